"""Conditional tasks (`given=`), ESMM's entire-space training, the joint AUC and the served product."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import config as config_lib
from keras_mtl.export import signatures
from keras_mtl.tasks import Binary, Multiclass, Regression

NAN = np.nan


def _bce(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


# click: 1 0 1 1 missing 0 ; buy: 1 missing 0 missing 1 0 (the last row: consistent 0 where no click)
CLICK = np.array([1, 0, 1, 1, -1, 0], "float32")
BUY = np.array([1, NAN, 0, NAN, 1, 0], "float32")
P_CLICK = np.array([0.8, 0.3, 0.6, 0.7, 0.5, 0.2], "float32")
P_BUY = np.array([0.6, 0.9, 0.2, 0.5, 0.4, 0.3], "float32")


def _model(buy: Binary, architecture="shared_bottom", **kwargs):
    return mtl.models.get(architecture)(keras.Input((3,), name="x"), [Binary("click"), buy], **kwargs)


def _preds():
    return {"click": tf.constant(P_CLICK[:, None]), "buy": tf.constant(P_BUY[:, None])}


def test_conditional_loss_counts_only_the_parents_positive_examples():
    model = _model(Binary("buy", given="click"))
    losses, counts = model.task_losses({"click": CLICK, "buy": BUY}, _preds(), check=True)
    # buy is scored where click = 1 and buy is labelled: rows 0 and 2 (row 3 has no buy label,
    # row 4 no click label, rows 1 and 5 no click).
    expected = (_bce(1, 0.6) + _bce(0, 0.2)) / 2
    assert float(losses["buy"]) == pytest.approx(expected, rel=1e-5)
    assert float(counts["buy"]) == 2
    clicked = [0, 1, 2, 3, 5]
    assert float(losses["click"]) == pytest.approx(np.mean(_bce(CLICK[clicked], P_CLICK[clicked])), rel=1e-5)


def test_a_chain_of_conditions_takes_the_whole_chain():
    tasks = [Binary("view"), Binary("click", given="view"), Binary("buy", given="click")]
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), tasks)
    y = {"view": np.array([1, 0, 1], "float32"), "click": np.array([1, 1, 0], "float32"),
         "buy": np.array([1, 1, 1], "float32")}
    preds = {k: tf.constant([[0.5], [0.5], [0.5]]) for k in y}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, counts = model.task_losses(y, preds)
    # click counts where view = 1 (rows 0, 2); buy where click = 1 and counted (row 0 only:
    # row 1's click is outside click's own sample space).
    assert float(counts["click"]) == 2 and float(counts["buy"]) == 1


def test_entire_space_loss_is_the_product_against_both_positive():
    model = _model(Binary("buy", given="click", entire_space=True))
    losses, counts = model.task_losses({"click": CLICK, "buy": BUY}, _preds())
    # Over every example with a click label (not row 4); the label is click AND buy;
    # row 3 (clicked, buy unknown) does not count.
    rows = [0, 1, 2, 5]
    joint = np.array([1, 0, 0, 0], "float32")
    expected = np.mean(_bce(joint, P_CLICK[rows] * P_BUY[rows]))
    assert float(losses["buy"]) == pytest.approx(expected, rel=1e-5)
    assert float(counts["buy"]) == 4


def test_esmm_trains_pcvr_only_through_the_product():
    keras.utils.set_random_seed(0)
    model = mtl.models.esmm(keras.Input((3,), name="x"), Binary("click"), Binary("buy"))
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    with tf.GradientTape() as tape:
        y_pred = model(x)
        losses, _ = model.task_losses({"click": CLICK, "buy": BUY}, y_pred)
    # The click loss alone moves no weight of buy's head; the product's loss does.
    head = model.get_layer("buy").trainable_weights
    assert all(g is None for g in tape.gradient(losses["click"], head, unconnected_gradients="none"))
    with tf.GradientTape() as tape:
        y_pred = model(x)
        losses, _ = model.task_losses({"click": CLICK, "buy": BUY}, y_pred)
    grads = tape.gradient(losses["buy"], model.get_layer("click").trainable_weights)
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)  # pCTR is trained by the product too


def test_joint_auc_and_the_served_product():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 3)).astype("float32")
    click = (x[:, 0] > 0).astype("float32")
    buy = np.where(click == 1, (x[:, 1] > 0).astype("float32"), NAN).astype("float32")
    model = _model(Binary("buy", given="click"))
    model.compile(optimizer="adam")
    history = model.fit({"x": x}, {"click": click, "buy": buy}, epochs=2, batch_size=64, verbose=0)
    assert "click_and_buy_auc" in history.history
    result = model.evaluate({"x": x}, {"click": click, "buy": buy}, verbose=0, return_dict=True)
    p = model.predict({"x": x}, verbose=0)
    joint = (p["click"] * p["buy"])[:, 0]
    auc = keras.metrics.AUC(num_thresholds=2000)
    auc.update_state(np.where(click == 1, np.nan_to_num(buy), 0.0), joint)
    assert result["click_and_buy_auc"] == pytest.approx(float(auc.result()), abs=1e-4)
    conditional = keras.metrics.AUC(num_thresholds=2000)
    clicked = click == 1
    conditional.update_state(buy[clicked], p["buy"][clicked, 0])
    assert result["buy_auc"] == pytest.approx(float(conditional.result()), abs=1e-4)
    served = signatures.serve(model, {"x": x[:5]})
    assert sorted(served) == ["buy", "click", "click_and_buy"]
    np.testing.assert_allclose(served["click_and_buy"], joint[:5], rtol=1e-6)
    assert signatures.output_keys(model) == {"click": ["click"], "buy": ["buy", "click_and_buy"]}


def test_esmm_under_any_architecture():
    for architecture, kwargs in (("shared_bottom", {}), ("mmoe", {"num_experts": 2, "expert_units": [4]}),
                                 ("cgc", {"num_experts": 1, "num_task_experts": 1, "expert_units": [4]}),
                                 ("ple", {"num_experts": 1, "num_task_experts": 1, "expert_units": [4], "num_levels": 2})):
        model = mtl.models.esmm(keras.Input((3,), name="x"), Binary("click"), Binary("buy", weight=2.0),
                                architecture=architecture, **kwargs)
        buy = model.get_task("buy")
        assert (buy.given, buy.entire_space, buy.weight) == ("click", True, 2.0), architecture
        assert sorted(model.output) == ["buy", "click"]
    with pytest.raises(ValueError, match="esmm: cvr_task must be a keras_mtl.tasks.Binary task"):
        mtl.models.esmm(keras.Input((3,)), Binary("click"), Regression("spend"))
    with pytest.raises(ValueError, match="cvr_task 'buy' is given 'view', not the ctr_task 'click'"):
        mtl.models.esmm(keras.Input((3,)), Binary("click"), Binary("buy", given="view"))


def test_saved_and_loaded_conditional_tasks(tmp_path):
    model = mtl.models.esmm(keras.Input((3,), name="x"), Binary("click"), Binary("buy", inconsistent="raise"))
    path = mtl.saving.save_model(model, tmp_path / "m.keras")
    loaded = mtl.saving.load_model(path)
    buy = loaded.get_task("buy")
    assert (buy.given, buy.entire_space, buy.inconsistent) == ("click", True, "raise")


def test_bad_conditions_are_named():
    x = keras.Input((3,), name="x")
    with pytest.raises(ValueError, match="Task 'buy' is given 'click', which is not a task of this model"):
        mtl.models.shared_bottom(x, [Binary("view"), Binary("buy", given="click")])
    with pytest.raises(ValueError, match="Task 'buy' is given 'topic', a Multiclass task"):
        mtl.models.shared_bottom(x, [Multiclass("topic", 3), Binary("buy", given="topic")])
    with pytest.raises(ValueError, match="Tasks are given each other in a cycle: a -> b -> a"):
        mtl.models.shared_bottom(x, [Binary("a", given="b"), Binary("b", given="a")])
    with pytest.raises(ValueError, match="cannot be given itself"):
        Binary("a", given="a")
    with pytest.raises(ValueError, match="entire_space=True .* needs a Binary task with `given` set; this is a Regression"):
        Regression("spend", given="click", entire_space=True)
    with pytest.raises(ValueError, match="needs a Binary task with `given` set; this is a Binary with given=None"):
        Binary("buy", entire_space=True)
    with pytest.raises(ValueError, match="'click_and_buy', which is also a task's name"):
        mtl.models.shared_bottom(x, [Binary("click"), Binary("buy", given="click"), Binary("click_and_buy")])
    with pytest.raises(ValueError, match="inconsistent must be 'warn' or 'raise'"):
        Binary("buy", given="click", inconsistent="ignore")
    # A Regression may be conditional (spend given a click): masked, no joint product.
    model = mtl.models.shared_bottom(x, [Binary("click"), Regression("spend", given="click")])
    assert signatures.output_keys(model)["spend"] == ["spend"]


def test_inconsistent_labels_are_counted_and_reported_or_raised():
    click = np.array([1, 0, 0, 1, 0], "float32")
    buy = np.array([1, 1, NAN, 0, 1], "float32")
    x = np.zeros((5, 3), "float32")
    model = _model(Binary("buy", given="click"))
    model.compile(optimizer="sgd")
    with pytest.warns(UserWarning, match=r"Task 'buy' \(given 'click'\): 2 example\(s\) in .* have buy = 1 where "
                      r"click = 0 \(first at row 1\); they are outside its sample space"):
        model.fit({"x": x}, {"click": click, "buy": buy}, epochs=1, verbose=0)
    strict = _model(Binary("buy", given="click", inconsistent="raise"))
    strict.compile(optimizer="sgd")
    before = [w.copy() for w in strict.get_weights()]
    with pytest.raises(ValueError, match="2 example\\(s\\) .* inconsistent='raise' makes this an error"):
        strict.fit({"x": x}, {"click": click, "buy": buy}, epochs=1, verbose=0)
    for w0, w1 in zip(before, strict.get_weights()):
        np.testing.assert_array_equal(w0, w1)  # nothing trained
    import pandas as pd

    frame = pd.DataFrame({"x": np.arange(40.0), "click": np.tile(click, 8), "buy": np.tile(buy, 8)})
    with pytest.raises(ValueError, match="Task 'buy' \\(given 'click'\\): [0-9]+ example\\(s\\) in split"):
        mtl.data.from_dataframe(frame, [Binary("click"), Binary("buy", given="click", inconsistent="raise")])


def test_run_config_declares_conditional_tasks():
    cfg = config_lib.from_dict(config_lib.Config, {
        "name": "ads", "tasks": [{"name": "click", "type": "binary"},
                                 {"name": "buy", "type": "binary", "given": "click", "entire_space": True}],
    })
    buy = cfg.tasks[1].build()
    assert (buy.given, buy.entire_space) == ("click", True)
    with pytest.raises(config_lib.ConfigError, match=r"tasks\[1\].given: Task 'buy' is given 'clik'"):
        config_lib.from_dict(config_lib.Config, {
            "name": "ads", "tasks": [{"name": "click", "type": "binary"},
                                     {"name": "buy", "type": "binary", "given": "clik"}],
        })


def test_a_single_task_baseline_reads_its_given_labels_from_the_data():
    # compare's single-task baseline (and a task group) of a conditional task: the given
    # task is not in the model, its labels still define the sample space.
    model = mtl.models.single_task(keras.Input((3,), name="x"), Binary("buy", given="click", entire_space=True))
    losses, counts = model.task_losses({"click": CLICK, "buy": BUY}, {"buy": tf.constant(P_BUY[:, None])})
    assert float(counts["buy"]) == 2  # rows 0 and 2, as for the conditional task with its parent
    assert float(losses["buy"]) == pytest.approx((_bce(1, 0.6) + _bce(0, 0.2)) / 2, rel=1e-5)
    assert signatures.output_keys(model) == {"buy": ["buy"]}  # no parent output: no joint product
    with pytest.raises(ValueError, match="No labels for 'click', which task\\(s\\) \\['buy'\\] are given"):
        model.task_losses({"buy": BUY}, {"buy": tf.constant(P_BUY[:, None])})


def test_the_joint_auc_has_its_own_group_in_tensorboard_and_the_metric_table(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from keras_mtl.training import metric_table

    x = np.random.default_rng(2).normal(size=(64, 3)).astype("float32")
    click = (x[:, 0] > 0).astype("float32")
    buy = np.where(click == 1, (x[:, 1] > 0).astype("float32"), NAN).astype("float32")
    model = _model(Binary("buy", given="click"))
    model.compile(optimizer="sgd")
    history = model.fit({"x": x}, {"click": click, "buy": buy}, epochs=1, verbose=0,
                        callbacks=[mtl.callbacks.TaskScalars(str(tmp_path))])
    events = EventAccumulator(str(tmp_path / "mtl"))
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"click_and_buy/auc", "buy/auc", "click/auc"} <= tags
    assert not any(t.startswith("click/and_") for t in tags)
    table = metric_table({k: v[-1] for k, v in history.history.items()}, mtl._conditions.log_groups(model.tasks))
    assert table.splitlines()[-1].split()[0] == "click_and_buy"


def test_a_user_pipeline_with_inconsistent_labels_fails_in_the_step_when_asked():
    x = np.zeros((4, 3), "float32")
    y = {"click": np.array([1, 0, 1, 0], "float32"), "buy": np.array([1, 1, 0, np.nan], "float32")}
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    strict = _model(Binary("buy", given="click", inconsistent="raise"))
    strict.compile(optimizer="sgd", jit_compile=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Task buy \\(given click\\): a label of 1 where click is 0"):
        strict.fit(ds, epochs=1, verbose=0)
    lenient = _model(Binary("buy", given="click"))
    lenient.compile(optimizer="sgd", jit_compile=False)
    lenient.fit(ds, epochs=1, verbose=0)  # warn (the default) does not stop a user pipeline
