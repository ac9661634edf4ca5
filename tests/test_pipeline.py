"""`from_columns` batches: exactly the rows of a straightforward reference, at a fixed per-pass cost."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mtl.callbacks import SetEpoch
from keras_mtl.data import from_columns
from keras_mtl.data.pipeline import _row_gatherer


def mixed_columns(n):
    """Columns of every kind the bundled datasets have, and some they do not: several hold one
    value a row in a shared dtype (and so share a gather), the others are gathered alone."""
    rng = np.random.default_rng(0)
    features = {
        "age": rng.normal(size=(n, 1)).astype("float32"),
        "city": np.array([[f"c{i % 7}"] for i in range(n)], dtype=object),
        "encoded": rng.normal(size=(n, 9)).astype("float32"),
        "ids": rng.integers(0, 1000, size=(n, 3)),
        "image": rng.integers(0, 255, size=(n, 2, 3)).astype("uint8"),
        "empty": np.zeros((n, 0), "float32"),
        "text": np.array([f"t{i}" for i in range(n)], dtype=object),
        "weight": rng.normal(size=(n,)).astype("float32"),
    }
    labels = {
        "income": rng.integers(0, 2, size=n).astype("float32"),
        "kind": rng.integers(0, 3, size=n),
        "tags": rng.integers(0, 2, size=(n, 3)).astype("float32"),
    }
    return features, labels


def reference(columns, n, batch_size, seed, epoch, shuffle):
    """The batches as the straightforward pipeline makes them: the epoch's permutation, cut in
    batches, each batch gathered from every column."""
    if shuffle:
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=[seed, epoch]).numpy()
    else:
        order = np.arange(n)
    as_tensors = {k: tf.convert_to_tensor(v).numpy() for k, v in columns.items()}
    return [{k: v[order[s : s + batch_size]] for k, v in as_tensors.items()} for s in range(0, n, batch_size)]


def assert_same_batches(dataset, features, labels, n, batch_size, seed, epoch, shuffle):
    want_x = reference(features, n, batch_size, seed, epoch, shuffle)
    want_y = reference(labels, n, batch_size, seed, epoch, shuffle)
    got = list(dataset)
    assert len(got) == len(want_x)
    for (x, y), wx, wy in zip(got, want_x, want_y):
        assert list(x) == list(features) and list(y) == list(labels)  # the callers' key order
        for got_part, want_part in ((x, wx), (y, wy)):
            for name, want in want_part.items():
                value = got_part[name].numpy()
                assert value.dtype == want.dtype and value.shape == want.shape, name
                np.testing.assert_array_equal(value, want, err_msg=name)


@pytest.mark.parametrize("n,batch_size", [(50, 8), (48, 8), (5, 16), (7, 1), (64, 64)])
def test_shuffled_batches_are_the_reference_permutation_gathered(n, batch_size):
    features, labels = mixed_columns(n)
    ds = from_columns(features, labels, batch_size=batch_size, shuffle=True, seed=3)
    for epoch in (0, 4, 1):
        SetEpoch(ds).on_epoch_begin(epoch)
        assert_same_batches(ds, features, labels, n, batch_size, 3, epoch, shuffle=True)


@pytest.mark.parametrize("n,batch_size", [(50, 8), (5, 16)])
def test_unshuffled_batches_are_the_rows_in_order(n, batch_size):
    features, labels = mixed_columns(n)
    ds = from_columns(features, labels, batch_size=batch_size)
    assert_same_batches(ds, features, labels, n, batch_size, 0, 0, shuffle=False)
    assert_same_batches(ds, features, labels, n, batch_size, 0, 0, shuffle=False)  # every pass


@pytest.mark.parametrize("shuffle", [False, True])
def test_element_spec_and_cardinality(shuffle):
    features, labels = mixed_columns(50)
    ds = from_columns(features, labels, batch_size=8, shuffle=shuffle)
    expected = tuple(
        {k: tf.TensorSpec((None, *v.shape[1:]), tf.convert_to_tensor(v).dtype) for k, v in part.items()}
        for part in (features, labels)
    )
    assert ds.element_spec == expected
    assert int(ds.cardinality()) == len(ds) == 7
    unlabelled = from_columns(features, batch_size=8, shuffle=shuffle)
    assert unlabelled.element_spec == expected[0]
    assert int(unlabelled.cardinality()) == 7


def gathers_per_batch(columns):
    gather = _row_gatherer(columns)
    graph = tf.function(gather).get_concrete_function(tf.TensorSpec([None], tf.int64)).graph
    return sum(op.type == "GatherV2" for op in graph.get_operations())


def test_one_value_per_row_columns_are_gathered_together_by_dtype():
    # Like raw census-income: 32 string and 7 float features, 2 float labels.
    n = 20
    features = {f"s{i}": np.array([["a"]] * n, dtype=object) for i in range(32)}
    features.update({f"f{i}": np.ones((n, 1), "float32") for i in range(7)})
    labels = {"a": np.ones(n, "float32"), "b": np.zeros(n, "float32")}
    assert gathers_per_batch({"features": features, "labels": labels}) == 2
    features, labels = mixed_columns(n)
    # age, weight, income (float32); city, text (string); kind (int64) alone in its dtype;
    # encoded, ids, image, empty and tags (more or fewer than one value a row) each on their own.
    assert gathers_per_batch({"features": features, "labels": labels}) == 8


def test_a_pass_instantiates_at_most_two_functions():
    # Keras makes a new iterator every epoch and waits for its first batch; each
    # function in the pipeline is instantiated (and optimised) again then, a few
    # ms apiece on 2 cores. The pipeline this replaced had five.
    ds = from_columns({"x": np.arange(10.0)}, {"y": np.arange(10.0)}, batch_size=4, shuffle=True)
    graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
    assert len(graph.library.function) <= 2


def test_auto_sharding_by_element_splits_each_epoch_between_workers():
    # What MultiWorkerMirroredStrategy does to a dataset under pipeline_options' DATA policy.
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    ds = from_columns({"x": np.arange(50)}, {"y": np.arange(50.0)}, batch_size=8, shuffle=True, seed=1)
    SetEpoch(ds).on_epoch_begin(2)
    whole = [b[0]["x"].numpy().tolist() for b in ds]
    for index in range(2):
        SetEpoch(ds).on_epoch_begin(2)
        shard = [b[0]["x"].numpy().tolist() for b in _AutoShardDataset(ds, 2, index)]
        assert shard == whole[index::2]


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_dataset_does_not_keep_the_callers_arrays_alive(shuffle):
    # It holds its own (stacked) copy; holding the arrays too would double the memory.
    import gc
    import weakref

    features, labels = mixed_columns(30)
    refs = [weakref.ref(a) for part in (features, labels) for a in part.values()]
    ds = from_columns(features, labels, batch_size=8, shuffle=shuffle)
    del features, labels
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(list(ds)) == 4
