"""Labels as users have them: integer regression targets, pandas missing values, per-task sample weights."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import tasks
from keras_mtl.data.pandas_source import label_array


def inputs():
    return {"x": keras.Input((3,), name="x")}


def data(rng, n=64):
    x = rng.normal(size=(n, 3)).astype("float32")
    hours = (35 + 10 * x[:, 0]).round().astype("int64")  # integers, as a CSV gives them
    flag = (x[:, 1] > 0).astype("int64")
    return {"x": x}, {"h": hours, "f": flag}


def two_tasks(**regression):
    # Label keys differ from the task names on purpose.
    return [tasks.Regression("hours", label="h", **regression), tasks.Binary("flag", label="f")]


# ------------------------------------------------------------ integer regression labels
@pytest.mark.slow
def test_integer_regression_labels_train_with_numpy_and_evaluate(rng):
    x, y = data(rng)
    model = mtl.models.shared_bottom(inputs(), two_tasks(), trunk=mtl.trunks.mlp([8]))
    model.compile(optimizer="adam")
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0).history
    assert np.isfinite(history["hours_loss"]).all()
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    as_floats = model.evaluate(x, {"h": y["h"].astype("float32"), "f": y["f"]}, verbose=0, return_dict=True)
    assert logs["hours_mae"] == pytest.approx(as_floats["hours_mae"], rel=1e-6)
    assert logs["hours_loss"] == pytest.approx(as_floats["hours_loss"], rel=1e-6)


@pytest.mark.slow
def test_integer_regression_labels_from_a_dataset_and_from_splits(rng):
    x, y = data(rng)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    assert ds.element_spec[1]["h"].dtype == tf.int64
    model = mtl.models.shared_bottom(inputs(), two_tasks(), trunk=mtl.trunks.mlp([8]))
    model.compile(optimizer="adam")
    assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["hours_loss"]).all()
    assert np.isfinite(model.evaluate(ds, verbose=0, return_dict=True)["hours_mae"])

    columns = {split: (x, y) for split in ("train", "validation", "test")}
    split_data = mtl.data.MultiTaskData.from_splits("ints", inputs(), two_tasks(), columns, batch_size=16, seed=0)
    model.fit(split_data.train, validation_data=split_data.validation, epochs=1, verbose=0)
    assert np.isfinite(model.evaluate(split_data.test, verbose=0, return_dict=True)["hours_loss"])


def test_integer_labels_give_the_same_loss_as_floats_in_prepare():
    task = tasks.Regression("hours")
    y_pred = tf.constant([[1.0], [2.0]])
    ints, w_ints = task.prepare(tf.constant([3, 5]), y_pred)
    floats, w_floats = task.prepare(tf.constant([3.0, 5.0]), y_pred)
    assert ints.dtype == tf.float32
    np.testing.assert_array_equal(ints.numpy(), floats.numpy())
    np.testing.assert_array_equal(w_ints.numpy(), w_floats.numpy())


# --------------------------------------------------------------- pandas missing labels
@pytest.mark.parametrize("task, column, expected", [
    (tasks.Multiclass("topic", 3), pd.Series([2, -1, 0, None]), [2, -1, 0, -1]),
    (tasks.Multiclass("topic", 3), pd.Series(["2", "", "-1", None]), [2, -1, -1, -1]),
    (tasks.Multiclass("topic", 3), pd.Series([2, pd.NA, -1], dtype="Int64"), [2, -1, -1]),
    (tasks.Multiclass("topic", 2), pd.Series(pd.Categorical(["x", "", "y", None])), [0, -1, 1, -1]),
    (tasks.Binary("click"), pd.Series([1, 0, -1, None]), [1.0, 0.0, np.nan, np.nan]),
    (tasks.Binary("click"), pd.Series(["1", "", "0", " "]), [1.0, np.nan, 0.0, np.nan]),
    (tasks.Binary("click"), pd.Series([True, pd.NA, False], dtype="boolean"), [1.0, np.nan, 0.0]),
    # -1 is a value for Regression; the blank string is missing.
    (tasks.Regression("stars"), pd.Series(["1.5", "-1", "", None]), [1.5, -1.0, np.nan, np.nan]),
    (tasks.Regression("stars"), pd.Series([4, pd.NA], dtype="Int64"), [4.0, np.nan]),
    (tasks.Regression("xy", units=2), pd.Series([[1, -1], None, ""], dtype=object),
     [[1.0, -1.0], [np.nan, np.nan], [np.nan, np.nan]]),
    (tasks.Multilabel("tags", 3), pd.Series([[1, -1, 0], None, [np.nan, 1, None], ""], dtype=object),
     [[1.0, np.nan, 0.0], [np.nan] * 3, [np.nan, 1.0, np.nan], [np.nan] * 3]),
    (tasks.Tagging("ner", 4), pd.Series([[1, -1, 3], None, [np.nan, 2, pd.NA]], dtype=object),
     [[1, -1, 3], [-1, -1, -1], [-1, 2, -1]]),
])
def test_pandas_missing_markers_become_the_tasks_marker(task, column, expected):
    got = label_array(column, task)
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=got.dtype))


def test_from_pandas_reads_minus_one_and_empty_cells_as_missing():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "topic": ["2", "", "-1"], "click": [1, -1, 0]})
    ds = mtl.data.from_pandas(df, [tasks.Multiclass("topic", 3), tasks.Binary("click")], ["x"], shuffle=False)
    rows = [{k: v.numpy().item() for k, v in y.items()} for _, y in ds]
    assert [r["topic"] for r in rows] == [2, -1, -1]
    assert rows[0]["click"] == 1.0 and np.isnan(rows[1]["click"]) and rows[2]["click"] == 0.0


@pytest.mark.parametrize("task, column, message", [
    (tasks.Binary("click"), pd.Series([1, 0, 2]),
     r"Label 'click' \(task 'click'\) must be 0/1 .*; got 2 at row 2\."),
    (tasks.Multiclass("topic", 3), pd.Series([1, 5, 0]),
     r"Label 'topic' \(task 'topic'\) must hold class ids 0..2 .*; got 5 at row 1\."),
    (tasks.Multiclass("topic", 3), pd.Series(["1", "sports"]),
     r"Label 'topic' \(task 'topic'\) is not numeric: 'sports' at row 1"),
    (tasks.Multilabel("tags", 2), pd.Series([[1, 0], [1, 2]], dtype=object),
     r"Label 'tags' \(task 'tags'\) must be multi-hot values in \[0, 1\].*; got 2 at row 1\."),
    (tasks.Tagging("ner", 3), pd.Series([[1, 0], [1, 7]], dtype=object),
     r"Label 'ner' \(task 'ner'\) must hold tag ids 0..2.*; got 7 at row 1\."),
    (tasks.Tagging("ner", 3), pd.Series([[1, 0], ["x", 1]], dtype=object),
     r"Label 'ner' \(task 'ner'\): 'x' at row 1, position 0 is not a number\."),
    (tasks.Tagging("ner", 3), pd.Series([[1, 0], [1, 0, 1]], dtype=object),
     r"Label 'ner' \(task 'ner'\): the value at row 1 has length 3, expected 2"),
])
def test_bad_pandas_labels_name_the_task_row_and_value(task, column, message):
    with pytest.raises(ValueError, match=message):
        label_array(column, task)


# ------------------------------------------------------------------ sample weights
def head(model, name):
    # Trainable weights only: a normalised head's target stats are set by the first fit.
    return [w.numpy().copy() for w in model.get_layer(name).trainable_weights]


def weighted_model(task_list):
    model = mtl.models.shared_bottom(inputs(), task_list, trunk=mtl.trunks.mlp([8]))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    return model


def assert_unweighted_head_did_not_move(model, before, still, moved):
    for a, b in zip(head(model, still), before[still]):
        np.testing.assert_array_equal(a, b)
    assert max(np.abs(a - b).max() for a, b in zip(head(model, moved), before[moved])) > 1e-4


@pytest.mark.slow
def test_sample_weights_keyed_by_task_name_with_numpy_and_validation_data(rng):
    x, y = data(rng)
    model = weighted_model(two_tasks())
    before = {n: head(model, n) for n in ("hours", "flag")}
    zero_flag = {"hours": np.ones(64), "flag": np.zeros(64)}
    history = model.fit(
        x, y, sample_weight=zero_flag, validation_data=(x, y, zero_flag), batch_size=16, epochs=1, verbose=0
    ).history
    # Weight 0 everywhere: the flag task has no labelled examples, so its head gets no gradient.
    assert_unweighted_head_did_not_move(model, before, still="flag", moved="hours")
    assert history["flag_loss"] == [0.0] and history["val_flag_loss"] == [0.0]
    assert history["val_hours_loss"][0] > 0


@pytest.mark.slow
def test_sample_weights_keyed_by_task_name_in_a_dataset(rng):
    x, y = data(rng)
    model = weighted_model(two_tasks())
    before = {n: head(model, n) for n in ("hours", "flag")}
    ds = tf.data.Dataset.from_tensor_slices((x, y, {"hours": np.zeros(64), "flag": np.ones(64)})).batch(16)
    model.fit(ds, epochs=1, verbose=0)
    assert_unweighted_head_did_not_move(model, before, still="hours", moved="flag")
    assert model.evaluate(ds, verbose=0, return_dict=True)["hours_loss"] == 0.0


@pytest.mark.slow
def test_evaluate_weighs_each_task_by_its_own_weights(rng):
    x, y = data(rng, 32)
    model = weighted_model(two_tasks(normalize=False))
    w = np.linspace(0.0, 2.0, 32)
    logs = model.evaluate(x, y, sample_weight={"hours": w}, batch_size=32, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)["hours"][:, 0]
    expected = np.sum(w * (y["h"] - p) ** 2) / np.sum(w)
    assert logs["hours_loss"] == pytest.approx(expected, rel=1e-4)
    plain = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert logs["flag_loss"] == pytest.approx(plain["flag_loss"], rel=1e-6)  # no weights given: unweighted
    # One array weighs every task alike, whatever their label keys.
    same = model.evaluate(x, y, sample_weight=w, batch_size=32, verbose=0, return_dict=True)
    assert same["hours_loss"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_tasks_sharing_a_label_key_take_their_own_weights(rng):
    x, y = data(rng)
    model = weighted_model([tasks.Binary("seen", label="f"), tasks.Binary("ignored", label="f")])
    before = {n: head(model, n) for n in ("seen", "ignored")}
    model.fit(x, {"f": y["f"]}, sample_weight={"ignored": np.zeros(64)}, batch_size=16, epochs=1, verbose=0)
    assert_unweighted_head_did_not_move(model, before, still="ignored", moved="seen")


@pytest.mark.slow
def test_sample_weights_keyed_by_label_key_name_the_task(rng):
    x, y = data(rng)
    model = weighted_model(two_tasks())
    message = r"sample_weight names unknown task\(s\) \['h'\]; .* 'h' is the label key of task 'hours'"
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, sample_weight={"h": np.ones(64), "flag": np.ones(64)}, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.evaluate(x, y, sample_weight={"h": np.ones(64)}, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((x, y, {"h": np.ones(64)})).batch(16)
    with pytest.raises(ValueError, match=message):
        model.evaluate(ds, verbose=0)
