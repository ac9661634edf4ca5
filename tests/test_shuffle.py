"""The in-memory pipeline's shuffle: each epoch's order is a pure function of (seed, epoch)."""

import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.callbacks import SetEpoch
from keras_mtl.data import from_columns, shuffle_epoch


def order(ds, epoch=None):
    if epoch is not None:
        SetEpoch(ds).on_epoch_begin(epoch)
    return np.concatenate([b[0]["x"].numpy() for b in ds]).astype(int).tolist()


def test_each_epoch_is_a_permutation_keyed_by_seed_and_epoch():
    n = 50
    a = from_columns({"x": np.arange(n)}, {"y": np.arange(n)}, batch_size=8, shuffle=True, seed=1)
    b = from_columns({"x": np.arange(n)}, {"y": np.arange(n)}, batch_size=8, shuffle=True, seed=1)
    other_seed = from_columns({"x": np.arange(n)}, {"y": np.arange(n)}, batch_size=8, shuffle=True, seed=2)
    assert len(a) == 7 and [int(t[0]["x"].shape[0]) for t in a] == [8] * 6 + [2]
    orders = {}
    for epoch in (3, 0, 1, 3, 0):
        orders.setdefault(epoch, order(a, epoch))
        assert order(a, epoch) == orders[epoch]  # the same epoch, the same order, whatever came before
        assert order(b, epoch) == orders[epoch]  # another dataset with the same seed agrees
        assert order(other_seed, epoch) != orders[epoch]
        assert sorted(orders[epoch]) == list(range(n))  # every row once
    assert len({tuple(o) for o in orders.values()}) == 3  # epochs differ
    # Labels stay with their rows.
    for features, labels in a:
        np.testing.assert_array_equal(features["x"], labels["y"])


def test_without_set_epoch_every_pass_reshuffles():
    ds = from_columns({"x": np.arange(30)}, batch_size=30, shuffle=True)
    passes = [ds.take(1).get_single_element()["x"].numpy().tolist() for _ in range(3)]
    assert len({tuple(p) for p in passes}) == 3
    assert int(shuffle_epoch(ds).numpy()) == 3
    # ... and the n-th pass is epoch n's order.
    SetEpoch(ds).on_epoch_begin(1)
    assert ds.take(1).get_single_element()["x"].numpy().tolist() == passes[1]


def test_unshuffled_splits_keep_their_order_and_have_no_epoch():
    ds = from_columns({"x": np.arange(10)}, {"y": np.arange(10)}, batch_size=4)
    assert order(ds) == list(range(10)) == order(ds)
    assert shuffle_epoch(ds) is None
    with pytest.raises(ValueError, match="SetEpoch needs a shuffled keras_mtl dataset"):
        SetEpoch(ds)
    with pytest.raises(ValueError, match="SetEpoch needs"):
        SetEpoch(from_columns({"x": np.arange(10)}, shuffle=True).map(lambda f: f))


@pytest.mark.slow
def test_fit_sets_the_epoch_and_a_strategy_scope_does_not_mirror_it():
    import keras

    strategy = tf.distribute.get_strategy()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    with strategy.scope():
        ds = from_columns({"x": x}, {"t": x[:, 0]}, batch_size=8, shuffle=True, seed=0)
        model = mtl.models.shared_bottom(
            {"x": keras.Input((3,), name="x")}, [mtl.tasks.Regression("t")], trunk=mtl.trunks.mlp([4])
        )
        model.compile(optimizer="sgd")
    assert type(shuffle_epoch(ds)).__name__ == "ResourceVariable"
    model.fit(ds, epochs=3, initial_epoch=1, verbose=0)
    # SetEpoch set epoch 2 before the last epoch; that pass advanced it to 3.
    assert int(shuffle_epoch(ds).numpy()) == 3
