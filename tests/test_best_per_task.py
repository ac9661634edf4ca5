"""BestPerTask: each task's best epoch, kept weights, and models assembled from them."""

import math

import keras
import numpy as np
import pytest

import keras_mtl as mtl
from keras_mtl.callbacks import BestPerTask

# Scripted validation history (0-based epochs), val_a_auc (higher is better)
# and val_b_loss (lower is better):
#   epoch        0     1     2     3     4
#   a_auc      0.60  0.80  0.70  0.78  0.79   best: 1; ranks 5 1 4 3 2
#   b_loss     1.00  0.90  0.40  0.50  0.45   best: 2; ranks 5 4 1 3 2
#   rank sum     10     5     5     6     4   -> mean rank: epoch 4
# Epoch 0 is beaten on both tasks by epoch 1, epoch 3 by epoch 4: the
# weights kept are those of epochs 1, 2 (task bests) and 4 (last, Pareto).
A_AUC = [0.60, 0.80, 0.70, 0.78, 0.79]
B_LOSS = [1.00, 0.90, 0.40, 0.50, 0.45]
STAMP = 100.0  # epoch e's weights are all STAMP + e


def tasks():
    return [mtl.tasks.Binary("a", tower=[3]), mtl.tasks.Regression("b")]


def build(architecture):
    kwargs = {} if architecture == "shared_bottom" else {"num_experts": 2, "expert_units": [4]}
    return mtl.models.get(architecture)(keras.Input((4,)), tasks(), mtl.trunks.mlp([5]), **kwargs)


def play(callback, model, a_auc=A_AUC, b_loss=B_LOSS, first_epoch=0):
    """Runs the callback over a scripted history; epoch e's weights are all STAMP + e."""
    callback.set_model(model)
    callback.on_train_begin()
    for i, (auc, loss) in enumerate(zip(a_auc, b_loss)):
        epoch = first_epoch + i
        model.set_weights([np.full(w.shape, STAMP + epoch, w.dtype) for w in model.get_weights()])
        logs = {"loss": 1.0, "a_loss": 0.3, "b_loss": 0.7, "val_loss": 1.0, "val_a_loss": 0.4,
                "val_a_auc": auc, "val_b_loss": loss, "val_b_mae": 0.1}
        callback.on_epoch_end(epoch, logs)
    return callback


def stamps(model):
    """`{layer: epoch}` for every layer with weights, each of which must hold one stamp only."""
    out = {}
    for layer in model.layers:
        if layer.weights:
            values = np.unique(np.concatenate([np.ravel(w) for w in layer.get_weights()]))
            assert len(values) == 1, (layer.name, values)
            out[layer.name] = int(values[0] - STAMP)
    return out


# The layers only one task's output depends on, per architecture.
OWN = {
    "shared_bottom": {"a": {"a_tower_0", "a"}, "b": {"b"}},
    "mmoe": {"a": {"a_gate", "a_tower_0", "a"}, "b": {"b_gate", "b"}},
    "cgc": {"a": {"a_gate", "a_experts", "a_tower_0", "a"}, "b": {"b_gate", "b_experts", "b"}},
}


@pytest.mark.parametrize("architecture", sorted(OWN))
def test_assembled_model_takes_own_layers_from_each_tasks_best_epoch(architecture):
    model = build(architecture)
    compiled = architecture == "shared_bottom"
    if compiled:
        model.compile(optimizer="adam")
        model.optimizer.build(model.trainable_variables)  # as after a first training step
    best = play(BestPerTask(monitor={"a": "val_a_auc"}), model)
    assert best.best_epochs == {"a": 1, "b": 2}
    assert best.best_values == {"a": 0.80, "b": 0.40}
    assert best.mean_rank_epoch == 4
    assert best.kept_epochs == [1, 2, 4]

    own = {layer: task for task, layers in OWN[architecture].items() for layer in layers}
    shared = set(stamps(model)) - set(own)
    assert {"trunk_dense_0"} <= shared and ("shared_experts" in shared) == (architecture != "shared_bottom")
    for trunk, trunk_epoch in [("mean_rank", 4), ("last", 4), ("a", 1), ("b", 2), (2, 2)]:
        assembled = best.assemble(trunk=trunk)
        expected = {layer: best.best_epochs[own[layer]] if layer in own else trunk_epoch for layer in stamps(model)}
        assert stamps(assembled) == expected, trunk
    assert type(assembled) is type(model) and assembled.compiled == compiled
    assert assembled.get_layer("a") is not model.get_layer("a")
    assert set(stamps(model).values()) == {4}  # the model itself is left as the last epoch made it


def test_mean_rank_averages_tied_ranks_and_breaks_ties_by_the_earliest_epoch():
    # a_auc 0.7, 0.7, 0.8: ranks 2.5, 2.5, 1 (tied values share the mean of ranks 2 and 3);
    # b_loss 0.5, 0.3, 0.4: ranks 3, 1, 2. Mean ranks 2.75, 1.75, 1.5: epoch 2.
    # (Ranking ties at their lowest rank would give 2.5, 1.5, 1.5 and pick epoch 1.)
    model = build("shared_bottom")
    best = play(BestPerTask(monitor={"a": "val_a_auc"}), model, [0.7, 0.7, 0.8], [0.5, 0.3, 0.4])
    assert best.mean_rank_epoch == 2
    assert best.best_epochs == {"a": 2, "b": 1}
    # Equal mean ranks (1.5 each): the earliest; equal best values: the earliest too.
    best = play(BestPerTask(monitor={"a": "val_a_auc"}), build("shared_bottom"), [0.8, 0.7, 0.8], [0.5, 0.4, 0.5])
    assert best.mean_rank_epoch == 0 and best.best_epochs == {"a": 0, "b": 1}
    # Epoch 2 equals epoch 0 on every task: it can never be chosen, so only 0, 1 are kept beside the last.
    assert best.kept_epochs == [0, 1, 2]


def test_nan_values_are_the_worst_and_modes_can_be_given():
    model = build("shared_bottom")
    best = BestPerTask(monitor={"a": "val_a_auc"}, mode={"b": "max"})
    play(best, model, [math.nan, 0.6, 0.7], [0.1, 0.5, math.nan])
    assert best.best_epochs == {"a": 2, "b": 1}  # b maximised: NaN still loses
    best = play(BestPerTask(monitor={"a": "val_a_auc"}, mode="min"), build("shared_bottom"), [0.5, 0.6], [0.5, 0.4])
    assert best.best_epochs == {"a": 0, "b": 1}


def test_keep_all_keeps_every_epoch_and_an_unkept_epoch_is_refused_by_name():
    model = build("shared_bottom")
    best = play(BestPerTask(monitor={"a": "val_a_auc"}), model)
    with pytest.raises(ValueError, match=r"trunk epoch 3 were not kept.*\[1, 2, 4\].*keep_all=True"):
        best.assemble(trunk=3)
    with pytest.raises(ValueError, match=r"trunk epoch 7 was not recorded.*\[0, 1, 2, 3, 4\]"):
        best.assemble(trunk=7)
    best = play(BestPerTask(monitor={"a": "val_a_auc"}, keep_all=True), model)
    assert best.kept_epochs == [0, 1, 2, 3, 4]
    assert stamps(best.assemble(trunk=np.int64(3)))["trunk_dense_0"] == 3


def test_a_new_fit_from_a_recorded_epoch_starts_afresh_and_initial_epoch_continues():
    model = build("shared_bottom")
    best = play(BestPerTask(monitor={"a": "val_a_auc"}), model)
    play(best, model, [0.9, 0.5], [0.9, 0.8], first_epoch=5)  # fit(..., initial_epoch=5)
    assert best.best_epochs == {"a": 5, "b": 2}
    play(best, model, [0.5, 0.6], [0.9, 0.8])  # a second fit counting from 0 again
    assert best.best_epochs == {"a": 1, "b": 1} and best.kept_epochs == [1]


def test_inside_fit_on_a_normalized_regression_task():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = {"a": (x[:, :1] > 0).astype("float32"), "b": 50.0 + 10.0 * x[:, 1:2]}
    model = build("mmoe")
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    seen = {}
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.__setitem__(
            epoch, {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
        )
    )
    best = BestPerTask(monitor={"a": "val_a_auc"}, keep_all=True)
    history = model.fit(x, y, validation_data=(x, y), epochs=4, batch_size=32, callbacks=[best, record], verbose=0)
    for task, key, pick in [("a", "val_a_auc", np.argmax), ("b", "val_b_loss", np.argmin)]:
        assert best.best_epochs[task] == int(pick(history.history[key]))
        assert best.best_values[task] == pytest.approx(history.history[key][best.best_epochs[task]])

    assembled = best.assemble(trunk="last")
    assert assembled.compiled and assembled.get_layer("b").adapted
    # The same function as the model holding those weights: own layers from each best epoch, the rest from the last.
    own = {layer: task for task, layers in OWN["mmoe"].items() for layer in layers}
    for name, weights in seen[3].items():
        epoch = best.best_epochs[own[name]] if name in own else 3
        model.get_layer(name).set_weights(seen[epoch][name])
    expected, got = model.predict(x, verbose=0), assembled.predict(x, verbose=0)
    for task in ("a", "b"):
        np.testing.assert_allclose(got[task], expected[task], rtol=1e-5, atol=1e-5)
    assert set(assembled.evaluate(x, y, verbose=0, return_dict=True)) >= {"a_auc", "b_loss"}


# ----------------------------------------------------------------- bad inputs


def test_a_model_without_tasks_is_refused():
    x = keras.Input((2,))
    with pytest.raises(TypeError, match="MultiTaskModel.*Functional"):
        BestPerTask().set_model(keras.Model(x, keras.layers.Dense(1)(x)))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"monitor": {"c": "val_c_auc"}}, ValueError, r"monitor names \['c'\].*tasks are \['a', 'b'\]"),
        ({"mode": {"c": "max"}}, ValueError, r"mode names \['c'\]"),
        ({"monitor": {"a": "val_b_mae"}}, ValueError, r"monitor of task 'a' is 'val_b_mae', a log of task 'b'"),
        ({"monitor": {"a": "val_a_weight"}}, ValueError, r"'val_a_weight'.*mode=\{'a': 'max'\}"),
    ],
)
def test_bad_monitors_name_the_task_and_key(kwargs, error, message):
    with pytest.raises(error, match=message):
        BestPerTask(**kwargs).set_model(build("shared_bottom"))


def test_bad_modes_and_monitor_values_are_refused_at_once():
    with pytest.raises(ValueError, match="mode must be one of"):
        BestPerTask(mode="highest")
    with pytest.raises(ValueError, match="mode must be one of"):
        BestPerTask(mode={"a": "up"})
    with pytest.raises(TypeError, match="log keys"):
        BestPerTask(monitor={"a": 3})


def test_log_keys_are_matched_to_the_longest_task_name():
    model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("a_b")])
    with pytest.raises(ValueError, match="monitor of task 'a' is 'val_a_b_loss', a log of task 'a_b'"):
        BestPerTask(monitor={"a": "val_a_b_loss"}).set_model(model)
    BestPerTask(monitor={"a_b": "val_a_b_auc", "a": "val_a_auc"}).set_model(model)  # a_b's auc, maximised


def test_a_missing_monitor_names_the_key_and_the_validation_logs():
    best = BestPerTask(monitor={"a": "val_a_acc"})
    best.set_model(build("shared_bottom"))
    with pytest.raises(ValueError, match=r"epoch 0's logs have no \['val_a_acc'\].*task\(s\) \['a'\].*'val_a_auc'"):
        best.on_epoch_end(0, {"val_a_auc": 0.5, "val_b_loss": 1.0, "loss": 1.0})


def test_epochs_without_validation_are_skipped_with_one_warning():
    best = BestPerTask()
    best.set_model(build("shared_bottom"))
    best.on_train_begin()
    with pytest.warns(UserWarning, match="epoch 0 logged no validation metrics") as caught:
        best.on_epoch_end(0, {"loss": 1.0, "a_loss": 0.5, "b_loss": 0.5})
        best.on_epoch_end(1, {"loss": 1.0, "a_loss": 0.5, "b_loss": 0.5})
    assert len(caught) == 1 and best.best_epochs == {}
    with pytest.raises(ValueError, match="recorded no epoch.*validation_data"):
        best.assemble()


def test_bad_trunks_are_refused_by_name():
    best = play(BestPerTask(monitor={"a": "val_a_auc"}), build("shared_bottom"))
    with pytest.raises(ValueError, match=r"trunk='c' is neither 'mean_rank', 'last', a task .*\['a', 'b'\]"):
        best.assemble(trunk="c")
    with pytest.raises(TypeError, match="epoch index"):
        best.assemble(trunk=True)
    with pytest.raises(TypeError, match="epoch index"):
        best.assemble(trunk=1.0)
    model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("last"), mtl.tasks.Binary("b")])
    best = BestPerTask()
    best.set_model(model)
    best.on_epoch_end(0, {"val_last_loss": 0.5, "val_b_loss": 0.5})
    with pytest.raises(ValueError, match=r"both a keyword and a task.*best_epochs\['last'\]"):
        best.assemble(trunk="last")
