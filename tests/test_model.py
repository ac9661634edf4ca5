"""MultiTaskModel and the factories: outputs, compile, masked training, logs, .keras round trip."""

import inspect
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import tasks


def toy(rng, n=64):
    x = rng.normal(size=(n, 4)).astype("float32")
    y = {
        "a": (x[:, 0] > 0).astype("float32"),
        "b": x[:, 1].astype("float32"),
        "c": np.clip((np.abs(x[:, 2]) * 2).astype("int64"), 0, 2),
    }
    return x, y


def three_tasks():
    return [tasks.Binary("a"), tasks.Regression("b"), tasks.Multiclass("c", num_classes=3)]


def test_shared_bottom_outputs_named_after_tasks():
    model = mtl.models.shared_bottom(keras.Input((4,)), three_tasks(), trunk=mtl.trunks.mlp([8, 6]))
    assert isinstance(model, mtl.MultiTaskModel)
    assert {k: v.shape for k, v in model.output.items()} == {"a": (None, 1), "b": (None, 1), "c": (None, 3)}
    assert [t.name for t in model.tasks] == ["a", "b", "c"]
    assert model.shared_layers == ["trunk_dense_0", "trunk_dense_1"]
    assert len(model.shared_variables) == 4
    assert model.get_layer(model.representation).output.shape == (None, 6)


def test_single_task_is_the_same_trunk_with_one_head():
    model = mtl.models.single_task(keras.Input((4,)), tasks.Binary("a"), trunk=mtl.trunks.mlp([8]))
    assert model.output_names == ["a"] and model.name == "single_task_a"
    with pytest.raises(TypeError, match=r"single_task takes one Task, got a list of 2: build one single_task model"):
        mtl.models.single_task(keras.Input((4,)), [tasks.Binary("a"), tasks.Binary("b")])
    assert model.shared_layers == ["trunk_dense_0", "a"]  # one task: all of it is "shared"


def test_no_lambda_layers_anywhere(census_small):
    model = mtl.models.shared_bottom(
        census_small.inputs, census_small.tasks, trunk=mtl.trunks.tabular(census_small.feature_space, [8])
    )
    assert not [l for l in model.layers if isinstance(l, keras.layers.Lambda)]


def test_fit_logs_each_task(rng):
    x, y = toy(rng)
    model = mtl.models.shared_bottom(keras.Input((4,)), three_tasks(), trunk=mtl.trunks.mlp([8]))
    model.compile(optimizer="adam")
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert set(history) == {
        "loss", "a_loss", "a_auc", "a_accuracy", "b_loss", "b_mae", "b_rmse", "c_loss", "c_accuracy",
        "a_weight", "b_weight", "c_weight",
    }
    total = history["loss"][0]
    assert total > 0 and np.isfinite(total)


def test_loss_is_weighted_sum_of_masked_means(rng):
    x, y = toy(rng, 32)
    y["a"][:10] = -1  # missing
    y["b"][5:20] = np.nan  # missing
    model = mtl.models.shared_bottom(
        keras.Input((4,)), [tasks.Binary("a", weight=2.0), tasks.Regression("b", weight=0.5)],
        trunk=mtl.trunks.mlp([8]),
    )
    model.compile(optimizer="sgd")
    logs = model.evaluate(x, {"a": y["a"], "b": y["b"]}, batch_size=32, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    la, pa = y["a"][10:], np.clip(p["a"][10:, 0], 1e-7, 1 - 1e-7)
    expected_a = np.mean(-(la * np.log(pa) + (1 - la) * np.log(1 - pa)))
    keep = ~np.isnan(y["b"])
    expected_b = np.mean((y["b"][keep] - p["b"][keep, 0]) ** 2)
    assert logs["a_loss"] == pytest.approx(expected_a, rel=1e-4)
    assert logs["b_loss"] == pytest.approx(expected_b, rel=1e-4)
    assert logs["loss"] == pytest.approx(2.0 * expected_a + 0.5 * expected_b, rel=1e-4)


def test_epoch_task_loss_weighs_batches_by_label_count(rng):
    # Labels only in the first batch: the epoch value must be that batch's
    # masked mean, not diluted by the unlabelled batches.
    x, y = toy(rng, 64)
    y["a"][16:] = -1
    model = mtl.models.shared_bottom(keras.Input((4,)), [tasks.Binary("a")], trunk=mtl.trunks.mlp([4]))
    model.compile(optimizer="sgd")
    whole = model.evaluate(x[:16], y["a"][:16], batch_size=16, verbose=0, return_dict=True)
    split = model.evaluate(x, y["a"], batch_size=16, verbose=0, return_dict=True)
    assert split["a_loss"] == pytest.approx(whole["a_loss"], rel=1e-5)


@pytest.mark.slow
def test_missing_labels_do_not_move_the_weights(rng):
    x, y = toy(rng, 32)
    y["a"][:16] = -1
    y2 = {k: v.copy() for k, v in y.items()}
    y2["a"][:16] = np.nan  # a different missing marker: same meaning

    def train(labels):
        keras.utils.set_random_seed(7)
        model = mtl.models.shared_bottom(keras.Input((4,)), three_tasks(), trunk=mtl.trunks.mlp([8]))
        model.compile(optimizer="sgd")
        model.fit(x, labels, batch_size=32, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    for w1, w2 in zip(train(y), train(y2)):
        np.testing.assert_array_equal(w1, w2)


def test_metrics_ignore_missing_labels(rng):
    x, y = toy(rng, 32)
    model = mtl.models.shared_bottom(keras.Input((4,)), [tasks.Multiclass("c", num_classes=3)])
    model.compile(optimizer="sgd")
    pred = model.predict(x, verbose=0)["c"].argmax(-1)
    labels = pred.copy()
    labels[::2] = -1  # the rest are labelled with the prediction: accuracy 1
    logs = model.evaluate(x, labels, verbose=0, return_dict=True)
    assert logs["c_accuracy"] == 1.0


def test_per_task_sample_weights(rng):
    x, y = toy(rng, 16)
    model = mtl.models.shared_bottom(keras.Input((4,)), three_tasks())
    model.compile(optimizer="sgd")
    sw = {"a": np.zeros(16, "float32"), "b": np.ones(16, "float32"), "c": np.ones(16, "float32")}
    logs = model.evaluate(x, y, sample_weight=sw, batch_size=16, verbose=0, return_dict=True)
    assert logs["a_loss"] == 0.0 and logs["b_loss"] > 0


def test_label_errors_name_the_task(rng):
    x, y = toy(rng, 16)
    model = mtl.models.shared_bottom(keras.Input((4,)), three_tasks())
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="No labels for task 'c'"):
        model.fit(x, {"a": y["a"], "b": y["b"]}, verbose=0)
    with pytest.raises(ValueError, match=r"unknown task label key\(s\) \['zzz'\]"):
        model.fit(x, {**y, "zzz": y["a"]}, verbose=0)
    ds = tf.data.Dataset.from_tensor_slices((x, y, {"q": np.ones(16, "float32")})).batch(8)
    with pytest.raises(ValueError, match=r"sample_weight names unknown task\(s\) \['q'\]"):
        model.fit(ds, verbose=0)


def test_compile_errors():
    model = mtl.models.shared_bottom(keras.Input((4,)), three_tasks())
    with pytest.raises(ValueError, match="does not take `loss`"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['zz'\]"):
        model.compile(optimizer="sgd", loss_weights={"zz": 1.0})
    with pytest.raises(ValueError, match="All loss weights are zero"):
        model.compile(optimizer="sgd", loss_weights={"a": 0.0, "b": 0.0, "c": 0.0})
    with pytest.raises(ValueError, match="Loss weight of task 'a'"):
        model.compile(optimizer="sgd", loss_weights={"a": -1.0})
    with pytest.raises(ValueError, match="Unknown weighting method 'magic'"):
        model.compile(optimizer="sgd", weighting="magic")
    with pytest.raises(ValueError, match=r"`metrics` names unknown task\(s\) \['q'\]"):
        model.compile(optimizer="sgd", metrics={"q": ["mae"]})
    with pytest.raises(ValueError, match="Call `compile\\(\\)`"):
        model.compute_loss(y={}, y_pred={})


def test_outputs_must_match_tasks():
    x = keras.Input((2,))
    with pytest.raises(ValueError, match="do not match the tasks"):
        mtl.MultiTaskModel(x, {"a": keras.layers.Dense(1)(x)}, tasks=[tasks.Binary("b")])
    with pytest.raises(TypeError, match="must be a dict"):
        mtl.MultiTaskModel(x, keras.layers.Dense(1)(x), tasks=[tasks.Binary("b")])


def test_loss_weights_override_task_weights():
    model = mtl.models.shared_bottom(keras.Input((4,)), three_tasks())
    model.compile(optimizer="sgd", loss_weights={"a": 3.0})
    assert model.weighting.task_weights == {"a": 3.0, "b": 1.0, "c": 1.0}
    assert "fixed" in mtl.weighting.available()


def test_loss_weights_as_a_list_follow_output_names():
    # Tasks given out of name order: Keras orders a dict's outputs by key, and
    # reads a list of loss weights in that (output_names) order.
    model = mtl.models.shared_bottom(
        keras.Input((4,)), [tasks.Regression("b"), tasks.Multiclass("c", num_classes=3), tasks.Binary("a")]
    )
    assert model.output_names == ["a", "b", "c"]
    model.compile(optimizer="sgd", loss_weights=[1, 2, 0.5])
    assert model.weighting.task_weights == {"a": 1.0, "b": 2.0, "c": 0.5}
    model.compile(optimizer="sgd", loss_weights=(3.0, 0.0, 1.0))
    assert model.weighting.task_weights == {"a": 3.0, "b": 0.0, "c": 1.0}
    for wrong in ([1, 2], []):
        with pytest.raises(ValueError, match=r"for 3 task\(s\).*output_names \['a', 'b', 'c'\]"):
            model.compile(optimizer="sgd", loss_weights=wrong)
    with pytest.raises(ValueError, match="cannot be combined"):
        model.compile(optimizer="sgd", weighting="uncertainty", loss_weights=[1, 1, 1])


def test_compile_config_round_trip_keeps_weighting_and_metrics():
    model = mtl.models.shared_bottom(keras.Input((4,)), three_tasks())
    model.compile(optimizer="sgd", loss_weights=[2, 1, 1], metrics={"b": ["mae"]})
    config = model.get_compile_config()
    assert config["metrics_override"] == {"b": ["mae"]}
    again = mtl.models.shared_bottom(keras.Input((4,)), three_tasks())
    again.compile_from_config(config)
    assert again.weighting.task_weights == {"a": 2.0, "b": 1.0, "c": 1.0}
    x, y = toy(np.random.default_rng(0), n=8)
    logs = again.evaluate(x, y, verbose=0, return_dict=True)
    assert "b_mae" in logs and "b_rmse" not in logs  # the override, not Regression's default mae + rmse


@pytest.mark.slow
def test_keras_round_trip(tmp_path, rng, census_small):
    model = mtl.models.shared_bottom(
        census_small.inputs,
        [tasks.Binary("income", weight=2.0, tower=[4]), tasks.Binary("never_married")],
        trunk=mtl.trunks.tabular(census_small.feature_space, [8]),
    )
    model.compile(optimizer="adam", loss_weights={"never_married": 0.5})
    model.fit(census_small.train.take(2), verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode stays on
    assert isinstance(loaded, mtl.MultiTaskModel)
    assert loaded.tasks == model.tasks
    assert loaded.weighting.task_weights == {"income": 2.0, "never_married": 0.5}
    assert loaded.shared_layers == model.shared_layers
    batch = next(iter(census_small.test))[0]
    want, got = model.predict_on_batch(batch), loaded.predict_on_batch(batch)
    for name in want:
        np.testing.assert_array_equal(want[name], got[name])
    with zipfile.ZipFile(path) as z:
        assert "Lambda" not in z.read("config.json").decode()
    # The loaded model trains on with the same optimizer state.
    loaded.fit(census_small.train.take(1), verbose=0)


def test_single_task_baseline_ignores_other_tasks_labels(rng):
    x, y = toy(rng, 16)
    model = mtl.models.single_task(keras.Input((4,)), tasks.Binary("a"))
    model.compile(optimizer="sgd")
    logs = model.evaluate(x, y, verbose=0, return_dict=True)  # y also has "b" and "c"
    assert set(logs) == {"loss", "a_loss", "a_auc", "a_accuracy"}  # evaluate: no task weights
    strict = mtl.models.shared_bottom(keras.Input((4,)), [tasks.Binary("a")])
    strict.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"unknown task label key\(s\) \['b', 'c'\]"):
        strict.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match="unknown_labels must be"):
        mtl.models.shared_bottom(keras.Input((4,)), [tasks.Binary("a")], unknown_labels="drop")


def test_the_overrides_of_keras_model_are_the_ones_listed_with_their_reasons():
    # keras_mtl/_model.py says why each override exists; one more (or one
    # fewer) must update that list, and this test.
    from keras_mtl._model import MultiTaskModel

    overridden = {n for n, v in vars(MultiTaskModel).items() if callable(v) and hasattr(keras.Model, n) and n != "__init__"}
    assert overridden == {
        "__call__", "compile", "compile_from_config", "compute_loss", "compute_metrics", "evaluate", "fit",
        "get_compile_config", "get_config", "predict", "test_step", "train_step",
    }
    with open(inspect.getsourcefile(MultiTaskModel)) as f:
        source = f.read()
    listed = source[: source.index("class MultiTaskModel(")]
    assert all(name in listed for name in overridden), sorted(n for n in overridden if n not in listed)
