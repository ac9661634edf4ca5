"""The bad-input catalogue of issue 9: every bad input fails early with an error naming the task, field or value.

Already pinned elsewhere (not repeated here): unknown label keys and tasks
without a label entry (test_model.test_label_errors_name_the_task), invalid
and duplicate task names (test_tasks), negative / all-zero loss weights in
compile (test_model.test_compile_errors), unknown and mistyped config keys
(test_config), wrong request dtypes in the TF1 loader (test_export), mixture
sources that label no task (test_mixture).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import callbacks, config, tasks
from keras_mtl.config import ConfigError
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.export import warmup
from keras_mtl.export.verification import run_requests_in_fresh_process


def model_for(task_list, width=4):
    model = mtl.models.shared_bottom(keras.Input((width,), name="x"), task_list, trunk=mtl.trunks.mlp([4]))
    model.compile(optimizer="sgd")
    return model


def splits(labels, features=None, n=6):
    features = features or {"x": np.ones((n, 4), "float32")}
    return {s: (features, labels) for s in ("train", "validation", "test")}


# ------------------------------------------------------------------ labels
@pytest.mark.parametrize(
    "task, column, message",
    [
        (tasks.Multiclass("topic", 5), np.array([0, 4, -1, 7, 1, 2]),
         r"Task 'topic' \(label 'topic'\) in split 'train': class id 7 at row 3 is out of range; valid ids are 0\.\.4 \(-1 = missing\)\."),
        (tasks.Multiclass("topic", 5), np.array([0, 1.5, 2, 3, 4, 0]), r"class id 1\.5 at row 1 is out of range"),
        (tasks.Tagging("ner", 3), np.array([[0, 1, -1]] * 5 + [[0, 3, 1]]), r"Task 'ner' .*tag id 3 at row 5 is out of range; valid ids are 0\.\.2"),
        (tasks.Binary("click"), np.array([0, 1, 3, 1, 0, 1.0]),
         r"Task 'click' \(label 'click'\) in split 'train': label 3\.0 at row 2 is outside \[0, 1\]"),
        (tasks.Regression("price"), np.array([1.0, np.nan, np.inf, 2, 3, 4]),
         r"Task 'price' .*: label inf at row 2 is not finite; mark a missing label with NaN\."),
        (tasks.Multilabel("tags", 3), np.ones((6, 2)),
         r"Task 'tags' .*labels of shape \(6, 2\) do not fit the task: each example needs 3 0/1 values \(a multi-hot row\)"),
        (tasks.Multiclass("topic", 4), np.eye(4)[[0, 1, 2, 3, 0, 1]],
         r"labels of shape \(6, 4\) do not fit the task: each example needs one class id \(0\.\.3\), not a one-hot row"),
        (tasks.Binary("click"), np.full(6, -1.0),
         r"Task 'click' \(label 'click'\) in split 'train' has no labels: every value is the missing marker"),
        (tasks.Multiclass("topic", 4), np.array(["a", "b", "c", "d", "a", "b"]),
         r"Task 'topic' .*: labels must be numbers, got dtype <U1; map class names to ids first\."),
    ],
)
def test_bad_label_columns_fail_when_the_dataset_is_built(task, column, message):
    with pytest.raises(ValueError, match=message):
        MultiTaskData.from_splits("d", None, [task], splits({task.label: column}), batch_size=2, seed=0)


def test_missing_markers_are_accepted_and_a_task_may_be_unlabelled_outside_train():
    t = [tasks.Multiclass("topic", 5), tasks.Regression("price")]
    labels = {"topic": np.array([0, 4, -1, 3, 1, 2]), "price": np.array([1.0, np.nan, -1.0, 2, 3, 4])}
    cols = splits(labels)
    cols["test"] = (cols["test"][0], {"topic": np.full(6, -1), "price": np.full(6, np.nan)})
    data = MultiTaskData.from_splits("d", None, t, cols, batch_size=2, seed=0)
    assert len(data.train) == 3


def test_a_task_with_no_label_column_in_a_split():
    cols = splits({"a": np.ones(6)})
    cols["validation"] = (cols["validation"][0], {})
    with pytest.raises(ValueError, match=r"No labels for task 'a' \(label key 'a'\) in split 'validation'; its labels are \[\]"):
        MultiTaskData.from_splits("d", None, [tasks.Binary("a")], cols, batch_size=2, seed=0)


def test_from_columns_checks_against_tasks():
    x = {"x": np.ones((4, 2), "float32")}
    with pytest.raises(ValueError, match=r"Task 'k' \(label 'k'\) in the data: class id 9 at row 0"):
        mtl.data.from_columns(x, {"k": np.array([9, 0, 1, 2])}, tasks=[tasks.Multiclass("k", 3)])
    assert len(mtl.data.from_columns(x, {"k": np.array([2, 0, 1, -1])}, batch_size=2, tasks=[tasks.Multiclass("k", 3)])) == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_name_the_feature_and_row(bad):
    features = {"x": np.ones((6, 4), "float32"), "age": np.array([30.0, 40, bad, 50, 60, 70])}
    with pytest.raises(ValueError, match=rf"Feature 'age' in split 'train' has 1 non-finite value\(s\) \(first: {bad} at row 2\)"):
        MultiTaskData.from_splits("d", None, [tasks.Binary("a")], splits({"a": np.ones(6)}, features), batch_size=2, seed=0)


def test_fit_checks_in_memory_labels_before_the_graph():
    model = model_for([tasks.Binary("a"), tasks.Multiclass("k", 3)])
    x = np.ones((4, 4), "float32")
    with pytest.raises(ValueError, match=r"Task 'a' \(label 'a'\) in the labels passed to fit: label 3\.0 at row 1 is outside \[0, 1\]"):
        model.fit(x, {"a": np.array([0, 3.0, 1, 0]), "k": np.zeros(4, "int64")}, verbose=0)
    with pytest.raises(ValueError, match=r"Task 'k' .* in the labels passed to evaluate: class id 3 at row 0"):
        model.evaluate(x, {"a": np.zeros(4), "k": np.array([3, 0, 0, 0])}, verbose=0)


def test_out_of_range_binary_labels_in_a_pipeline_fail_in_the_step():
    model = mtl.models.shared_bottom(keras.Input((4,), name="x"), [tasks.Binary("a")], trunk=mtl.trunks.mlp([4]))
    model.compile(optimizer="sgd", jit_compile=False)  # XLA drops Assert ops
    ds = tf.data.Dataset.from_tensor_slices((np.ones((4, 4), "float32"), {"a": np.array([0, 1, 2.0, 1])})).batch(4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Task \W*a\W*: labels must be in \[0, 1\] \(-1 or NaN = missing\)"):
        model.fit(ds, verbose=0)


def test_nan_in_numpy_features_is_refused_with_the_column_and_row():
    model = model_for([tasks.Binary("a")])
    x = np.ones((4, 4), "float32")
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"Feature 'x' in the data passed to fit has 1 non-finite value\(s\) \(first: nan at row 2\)"):
        model.fit(x, {"a": np.array([0, 1, 1, 0.0])}, verbose=0)
    with pytest.raises(ValueError, match=r"Feature 'x' in the data passed to predict"):
        model.predict(x, verbose=0)


def test_a_task_without_any_label_is_warned_about():
    model = model_for([tasks.Binary("a"), tasks.Binary("b")])
    x = np.ones((4, 4), "float32")
    with pytest.warns(UserWarning, match=r"Task 'b' has no labels in the labels passed to fit: every value is the missing marker"):
        model.fit(x, {"a": np.array([0, 1, 1, 0.0]), "b": np.full(4, -1.0)}, verbose=0)


def _pipeline(labels, features=None):
    features = np.ones((8, 4), "float32") if features is None else features
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(4)


def test_bad_labels_in_a_pipeline_are_named_under_xla_too():
    # XLA drops asserts from the step: a finite pipeline is read and checked once, before training.
    model = mtl.models.shared_bottom(
        keras.Input((4,), name="x"), [tasks.Binary("a"), tasks.Multiclass("k", 2)], trunk=mtl.trunks.mlp([4])
    )
    model.compile(optimizer="sgd", jit_compile=True)
    good = {"a": np.array([0, 1, -1, 1, 0, 1, 1, 0.0]), "k": np.array([0, 1, 1, -1, 0, 0, 1, 1])}
    bad = dict(good, k=np.array([0, 1, 3, 1, 0, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"Task k: class id out of range; valid ids are 0\.\.1 .* in the dataset passed to fit, the smallest and largest label are 0\.0 and 3\.0"):
        model.fit(_pipeline(bad), verbose=0)
    assert model.optimizer.iterations.numpy() == 0  # refused before any step
    nan_feature = np.ones((8, 4), "float32")
    nan_feature[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"Feature 'the input' in the dataset passed to fit holds NaN or inf"):
        model.fit(_pipeline(good, nan_feature), verbose=0)
    checked = _pipeline(good)
    model.fit(checked, verbose=0)
    assert model.jit_compile and model.optimizer.iterations.numpy() == 2
    # An infinite pipeline cannot be read ahead: its batches are checked as they are read.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Task k: class id out of range.*smallest and largest label in the batch.*\[0\] \[3\]"):
        model.fit(_pipeline(bad).repeat(), steps_per_epoch=2, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Feature 'x'|Feature 'the input' holds NaN or inf"):
        model.fit(_pipeline(good, nan_feature).repeat(), steps_per_epoch=2, verbose=0)


@pytest.mark.parametrize("jit", [False, True])
def test_checked_and_unchecked_data_mix_in_one_fit(jit):
    # Validation data checked another way than the training data: one step policy for the whole fit.
    model = mtl.models.shared_bottom(keras.Input((4,), name="x"), [tasks.Binary("a")], trunk=mtl.trunks.mlp([4]))
    model.compile(optimizer="sgd", jit_compile=jit)
    x, y = np.ones((8, 4), "float32"), {"a": np.array([0, 1, 1, 0, 1, 0, 1, 1.0])}
    history = model.fit(_pipeline(y), validation_data=(x, y), epochs=2, verbose=0)
    assert len(history.history["val_loss"]) == 2
    history = model.fit(x, y, validation_data=_pipeline(y), epochs=2, verbose=0)
    assert len(history.history["val_loss"]) == 2
    assert getattr(model, "_step_checks", True) is not jit  # the user's pipeline: checked in the step unless XLA


def test_pipelines_keras_mtl_checked_are_not_checked_again():
    from keras_mtl.data.batch_checks import checked_for
    from keras_mtl.data.pipeline import from_columns

    task = tasks.Binary("a")
    ds = from_columns({"x": np.ones((8, 4), "float32")}, {"a": np.ones(8)}, batch_size=4, tasks=[task])
    assert checked_for(ds, [tasks.Binary("a")]) and not checked_for(ds, [tasks.Binary("b")])
    assert not checked_for(ds, [tasks.Multiclass("a", 3)])  # another label rule for the same key
    model = mtl.models.shared_bottom(keras.Input((4,), name="x"), [task], trunk=mtl.trunks.mlp([4]))
    model.compile(optimizer="sgd", jit_compile=False)
    model.fit(ds, verbose=0)
    assert not getattr(model, "_step_checks", True)  # the step carries no label assert
    model.fit(_pipeline({"a": np.ones(8)}), verbose=0)
    assert getattr(model, "_step_checks", True)  # a user's pipeline: checked in the step


@pytest.mark.parametrize(
    "task, labels, message",
    [
        (tasks.Multilabel("tags", 5), np.ones((8, 3)),
         r"Task 'tags': labels of shape \(None, 3\) do not fit its output of shape \(None, 5\): each example needs 5 0/1 values"),
        (tasks.Binary("a"), np.ones((8, 2)), r"Task 'a': labels of shape \(None, 2\) do not fit .* one 0/1 value, got 2"),
    ],
)
def test_label_shapes_in_fit_name_the_task(task, labels, message):
    model = model_for([task])
    ds = tf.data.Dataset.from_tensor_slices((np.ones((8, 4), "float32"), {task.label: labels})).batch(4)
    with pytest.raises(ValueError, match=message):
        model.fit(ds, verbose=0)


# ------------------------------------------------------------------ inputs
def test_wrong_input_shape_and_dtype_to_fit_name_the_input():
    model = model_for([tasks.Binary("a")])
    y = {"a": np.ones(8)}
    with pytest.raises(ValueError, match=r"fit: input 'x' expects shape \(None, 4\) \(batch first\), got \(8, 5\)"):
        model.fit(np.ones((8, 5), "float32"), y, verbose=0)
    with pytest.raises(ValueError, match=r"fit: input 'x' is a numpy array of dtype <U1, which Keras does not take; the input expects float32"):
        model.fit(np.full((8, 4), "a"), y, verbose=0)
    with pytest.raises(ValueError, match=r"fit: input 'x' expects float32 values of shape \(None, 4\), got string"):
        model.fit(np.full((8, 4), "a", dtype=object), y, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((np.ones((8, 3), "float32"), y)).batch(4)
    with pytest.raises(ValueError, match=r"fit\(validation_data=...\): input 'x' expects shape \(None, 4\)"):
        model.fit(np.ones((8, 4), "float32"), y, validation_data=ds, verbose=0)
    with pytest.raises(ValueError, match=r"predict: input 'x' expects shape \(None, 4\) \(batch first\), got \(None, 3\)"):
        model.predict(ds, verbose=0)


def test_empty_data_is_an_error_not_a_silent_no_op():
    model = model_for([tasks.Binary("a")])
    ds = tf.data.Dataset.from_tensor_slices((np.ones((8, 4), "float32"), {"a": np.ones(8)})).batch(4)
    with pytest.raises(ValueError, match=r"^fit: the dataset is empty \(0 batches\)\.$"):
        model.fit(ds.take(0), verbose=0)
    with pytest.raises(ValueError, match=r"^fit ran no training step: the training data yielded no batches"):
        model.fit(ds.filter(lambda x, y: False), verbose=0)  # size unknown until read
    with pytest.raises(ValueError, match=r"^evaluate saw no batches: the data is empty\.$"):
        model.evaluate(ds.filter(lambda x, y: False), verbose=0)
    with pytest.raises(ValueError, match=r"^predict saw no batches: the data is empty\.$"):
        model.predict(ds.filter(lambda x, y: False), verbose=0)
    with pytest.raises(ValueError, match=r"^fit: input 'x' has 0 rows; there is nothing to run on\.$"):
        model.fit(np.ones((0, 4), "float32"), {"a": np.ones(0)}, verbose=0)
    with pytest.raises(ValueError, match="Cannot build a dataset from zero rows"):
        mtl.data.from_columns({"x": np.ones((0, 4))}, {"a": np.ones(0)})


def test_all_task_weights_zero_is_refused():
    with pytest.raises(ValueError, match=r"All loss weights are zero \(\{'a': 0\.0, 'b': 0\.0\}\): nothing would be trained"):
        model_for([tasks.Binary("a", weight=0), tasks.Binary("b", weight=0)])


# ---------------------------------------------------------------- NaN / inf
def test_non_finite_gradient_with_finite_loss_names_the_task_and_step(rng):
    x = rng.normal(size=(32, 4)).astype("float32")

    def sqrt_error(y, p):  # finite value, infinite slope at 0: its gradient is NaN
        return tf.reduce_mean(tf.sqrt(tf.abs(y - p) * 0.0), axis=-1)

    model = model_for([tasks.Regression("smooth"), tasks.Regression("spiky", loss=sqrt_error)])
    y = {"smooth": x[:, 0], "spiky": x[:, 1]}
    with pytest.raises(
        FloatingPointError,
        match=r"epoch 1, step 1: every loss was finite but the gradients of task\(s\) \['spiky'\] were non-finite",
    ):
        model.fit(x, y, batch_size=16, verbose=0, callbacks=[callbacks.StopOnNonFiniteLoss()])
    # Without the weight check the NaN only shows one step later, as a loss.
    model = model_for([tasks.Regression("smooth"), tasks.Regression("spiky", loss=sqrt_error)])
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 2: non-finite loss for task"):
        model.fit(x, y, batch_size=16, verbose=0, callbacks=[callbacks.StopOnNonFiniteLoss(check_weights=False)])


# ---------------------------------------------------------------- serving
@pytest.mark.slow
def test_every_serving_signature_refuses_bad_requests(tmp_path):
    model = model_for([tasks.Regression("y"), tasks.Multiclass("k", 3)], width=3)
    path = mtl.export.export_saved_model(model, tmp_path / "m")
    good = {"x": np.ones((2, 3), "float32")}
    example = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 2.0]))}))  # 2 values, not 3
    requests = [
        warmup.predict_log("m", "serving_default", {"x": np.ones((2, 3), "int64")}),
        warmup.predict_log("m", "predict_y", {"x": np.ones((2, 5), "float32")}),
        warmup.predict_log("m", "predict_k", {"z": np.ones((2, 3), "float32")}),
        warmup.predict_log("m", "serve_tf_example", {"examples": np.ones(2, "float32")}),
        warmup.predict_log("m", "serve_tf_example", {"examples": np.array([example.SerializeToString()], object)}),
        warmup.predict_log("m", "predict_y", good),
    ]
    dtype, shape, name, example_dtype, example_shape, ok = run_requests_in_fresh_process(path, requests)
    assert dtype == "Signature 'serving_default': input 'x' expects float32 but the request has int64."
    assert shape == "Cannot feed value of shape (2, 5) for Tensor predict_y_x:0, which has shape (None, 3)"
    assert name == "Signature 'predict_k' takes inputs ['x']; missing ['x'], unexpected ['z']."
    assert example_dtype == "Signature 'serve_tf_example': input 'examples' expects string but the request has float32."
    assert "Key: x, Index: 0.  Number of float values != expected.  Values size: 2 but output shape: [3]" in example_shape
    assert ok["y"].shape == (2,)


# ------------------------------------------------------------------ config
@pytest.mark.parametrize(
    "override, message",
    [
        ("output.logs_dir=/etc", r"output.logs_dir must be a relative folder inside the project \(the working directory\), got '/etc'"),
        ("output.export_dir=../../elsewhere", r"output.export_dir must be a relative folder inside the project"),
        ("output.checkpoint_dir=~/ckpt", r"output.checkpoint_dir must be a relative folder"),
        ("output.run=../../etc", r"output.run: invalid run name '../../etc'"),
        ("output.run=a/b", r"output.run: invalid run name 'a/b'"),
        ("output.logs_dir=5", r"output.logs_dir must be a string, got int 5"),
    ],
)
def test_config_paths_outside_the_project_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        config.load("examples/census.yaml", [override])


def test_config_paths_inside_the_project_are_fine():
    cfg = config.load("examples/census.yaml", ["output.logs_dir=runs/logs", "output.run=20260101-120000"])
    assert cfg.output.logs_dir == "runs/logs" and cfg.output.run == "20260101-120000"
