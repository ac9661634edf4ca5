"""Regression targets on any scale: `Regression(normalize=True)` trains on z-scores and predicts in label units."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import config as config_lib
from keras_mtl import _heads as heads, _model as model_lib, tasks


def table(n, seed):
    """Hours worked (about 40 +- 12) and two yes/no targets that share its features."""
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 6)).astype("float32")
    h1 = x[:, 0] * x[:, 1] + x[:, 2]
    h2 = np.abs(x[:, 3]) - 0.8 + x[:, 4] * x[:, 5]
    hours = 40 + 10 * h1 + 3 * r.normal(size=n)
    a = h1 + h2 + 0.3 * r.normal(size=n) > 0
    b = h1 - h2 + 0.3 * r.normal(size=n) > 0
    return x, {"hours": hours.astype("float32"), "a": a.astype("float32"), "b": b.astype("float32")}


@pytest.mark.slow
def test_a_large_scale_target_no_longer_drowns_the_binary_tasks():
    """The issue's case: with raw targets the regression's MSE (~150 and more)
    outweighs the binary cross-entropies with fixed weights, the shared trunk
    serves it alone and the binary tasks lose AUC; normalised, every binary
    task scores as well as its own single-task model."""
    x, y = table(4000, 0)
    x_test, y_test = table(2000, 1)

    def aucs(task_list):
        keras.utils.set_random_seed(0)
        model = mtl.models.shared_bottom(
            keras.Input((6,)), task_list, trunk=mtl.trunks.mlp([64, 32]), unknown_labels="ignore"
        )
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        model.fit(x, y, batch_size=64, epochs=4, verbose=0)
        logs = model.evaluate(x_test, y_test, batch_size=1000, verbose=0, return_dict=True)
        return {t.name: logs[f"{t.name}_auc"] for t in task_list if isinstance(t, tasks.Binary)}

    single = {**aucs([tasks.Binary("a")]), **aucs([tasks.Binary("b")])}
    raw = aucs([tasks.Regression("hours", normalize=False), tasks.Binary("a"), tasks.Binary("b")])
    normalized = aucs([tasks.Regression("hours"), tasks.Binary("a"), tasks.Binary("b")])
    assert min(single.values()) > 0.9  # the binary tasks are learnable
    for name in ("a", "b"):
        assert raw[name] < single[name] - 0.05, (raw, single)
        assert normalized[name] >= single[name] - 0.01, (normalized, single)


def regression_model(**kwargs):
    return mtl.models.shared_bottom(
        {"x": keras.Input((3,), name="x")}, [tasks.Regression("hours", label="h", **kwargs), tasks.Binary("a")],
        trunk=mtl.trunks.mlp([8]),
    )


def labelled(rng, n=64, mean=1000.0, std=50.0):
    x = rng.normal(size=(n, 3)).astype("float32")
    h = (mean + std * x[:, 0]).astype("float32")
    h[::5] = np.nan  # missing: left out of the stats
    return {"x": x}, {"h": h, "a": (x[:, 1] > 0).astype("float32")}


def stats(model, name="hours"):
    layer = model.get_layer(name)
    return layer.mean.numpy(), layer.std.numpy()


@pytest.mark.slow
def test_fit_sets_the_stats_from_the_training_rows_and_the_loss_is_on_z_scores(rng):
    x, y = labelled(rng)
    model = regression_model()
    model.compile(optimizer="adam")
    assert not model.get_layer("hours").adapted
    model.fit(x, y, validation_split=0.25, epochs=1, verbose=0)
    train = y["h"][:48]  # Keras validates on the last quarter
    np.testing.assert_allclose(stats(model), ([np.nanmean(train)], [np.nanstd(train)]), rtol=1e-5)
    assert model.get_layer("hours").adapted

    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)["hours"][:, 0]
    keep = ~np.isnan(y["h"])
    mean, std = stats(model)
    assert logs["hours_loss"] == pytest.approx(np.mean(((y["h"][keep] - p[keep]) / std[0]) ** 2), rel=1e-4)
    # Predictions, and the metrics, are in the label's units.
    assert logs["hours_mae"] == pytest.approx(np.mean(np.abs(y["h"][keep] - p[keep])), rel=1e-4)
    assert abs(np.mean(p) - 1000) < 200


@pytest.mark.slow
def test_fit_reads_a_finite_dataset_once_and_a_bounded_part_of_an_endless_one(rng, monkeypatch):
    x, y = labelled(rng)
    model = regression_model()
    model.compile(optimizer="adam")
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0)
    np.testing.assert_allclose(stats(model), ([np.nanmean(y["h"])], [np.nanstd(y["h"])]), rtol=1e-5)

    monkeypatch.setattr(model_lib, "ADAPT_BATCHES", 2)
    endless = regression_model()
    endless.compile(optimizer="adam")
    endless.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat(), steps_per_epoch=2, verbose=0)
    first = y["h"][:32]
    np.testing.assert_allclose(stats(endless), ([np.nanmean(first)], [np.nanstd(first)]), rtol=1e-5)


@pytest.mark.slow
def test_adapt_targets_sets_the_stats_and_fit_keeps_them(rng):
    x, y = labelled(rng)
    model = regression_model()
    model.compile(optimizer="adam")
    got = model.adapt_targets({"h": np.array([10, 30, np.nan]), "a": np.zeros(3)})
    assert list(got) == ["hours"]
    np.testing.assert_allclose(stats(model), ([20.0], [10.0]))
    model.fit(x, y, epochs=1, verbose=0)  # other labels: the stats set by hand stay
    np.testing.assert_allclose(stats(model), ([20.0], [10.0]))
    with pytest.raises(ValueError, match=r"No labels for task 'hours' \(label key 'h'\)"):
        model.adapt_targets({"hours": np.ones(3)})
    with pytest.raises(ValueError, match=r"Task 'hours' \(label 'h'\): labels hold inf"):
        model.adapt_targets({"h": np.array([1.0, np.inf])})


@pytest.mark.slow
def test_a_generator_needs_the_stats_set_first(rng):
    x, y = labelled(rng)
    model = regression_model()
    model.compile(optimizer="adam")

    def batches():
        while True:
            yield x, y

    with pytest.raises(ValueError, match=r"Task\(s\) \['hours'\] normalize their targets.*model.adapt_targets"):
        model.fit(batches(), steps_per_epoch=1, verbose=0)
    model.adapt_targets(y)
    model.fit(batches(), steps_per_epoch=1, verbose=0)


def test_unit_stats_ignore_missing_values_per_unit():
    task = tasks.Regression("xy", units=2)
    mean, std = task.target_stats(np.array([[1.0, 5.0], [3.0, np.nan], [np.nan, np.nan]]))
    np.testing.assert_allclose(mean, [2.0, 5.0])
    np.testing.assert_allclose(std, [1.0, 1.0])  # one value: no spread, std 1
    moments = tasks.TargetMoments(tasks.Regression("big"))
    for part in np.split(1e6 + np.arange(10.0), 5):  # merged batch by batch, a large mean
        moments.update(part)
    np.testing.assert_allclose(moments.result(), ([1e6 + 4.5], [np.std(np.arange(10.0))]), rtol=1e-12)


@pytest.mark.slow
def test_saved_model_keeps_its_stats(rng, tmp_path):
    x, y = labelled(rng)
    model = regression_model()
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = mtl.saving.load_model(path)
    np.testing.assert_allclose(stats(loaded), stats(model))
    assert loaded.get_layer("hours").adapted and loaded.get_task("hours").normalize
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["hours"], model.predict(x, verbose=0)["hours"], rtol=1e-6)
    before = stats(loaded)
    loaded.fit(x, {"h": y["h"] * 0 + 7.0, "a": y["a"]}, epochs=1, verbose=0)  # not adapted again
    np.testing.assert_allclose(stats(loaded), before)


@pytest.mark.slow
def test_export_returns_values_in_label_units(rng, tmp_path):
    x, y = labelled(rng)
    model = regression_model()
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)
    path = mtl.export.export_saved_model(model, str(tmp_path / "export"))
    rows = {"x": x["x"][:8]}
    report = mtl.export.verify(path, rows, model)
    assert report["max_abs_diff"] <= 1e-3
    served = tf.saved_model.load(path).signatures["serving_default"](x=tf.constant(rows["x"]))
    expected = model.predict(rows, verbose=0)["hours"][:, 0]  # one-unit outputs are served as (batch,)
    np.testing.assert_allclose(served["hours"].numpy().reshape(-1), expected, rtol=1e-5)
    assert abs(float(np.mean(served["hours"].numpy())) - 1000) < 200  # label units, not z-scores


@pytest.mark.slow
def test_normalized_regression_is_exact_under_mirrored_strategy(rng):
    from test_distributed import GLOBAL_BATCH, strategies

    x, y = labelled(rng, n=48)
    y["h"][np.arange(48) % GLOBAL_BATCH >= 10] = np.nan  # replica 1 holds fewer labels
    initial = regression_model().get_weights()
    runs = []
    for strategy in strategies():
        with strategy.scope():
            model = regression_model()
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(0.05))
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
        history = model.fit(ds, epochs=2, verbose=0).history
        runs.append((model, history))
    (one, h1), (two, h2) = runs
    np.testing.assert_allclose(stats(two), ([np.nanmean(y["h"])], [np.nanstd(y["h"])]), rtol=1e-5)
    for w1, w2 in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    for key in ("hours_loss", "hours_mae", "loss"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5, err_msg=key)
    assert abs(np.mean(two.predict(x, verbose=0)["hours"]) - 1000) < 200


def test_losses_that_need_raw_values_need_normalize_false():
    with pytest.raises(ValueError, match=r"Task 'count': loss 'poisson' needs the labels' own values.*normalize=False"):
        tasks.Regression("count", loss="poisson")
    assert tasks.Regression("count", loss="poisson", normalize=False).normalize is False


def test_models_saved_before_normalize_load_as_raw_regressions():
    config = tasks.Regression("hours").get_config()
    del config["normalize"]
    assert tasks.Regression.from_config(config).normalize is False


def test_a_hand_built_head_needs_normalize_false():
    x = keras.Input((3,))
    with pytest.raises(ValueError, match=r"Task 'y' normalizes its targets.*pass normalize=False"):
        mtl.MultiTaskModel(x, {"y": keras.layers.Dense(1, name="y")(x)}, tasks=[tasks.Regression("y")])
    mtl.MultiTaskModel(x, {"y": keras.layers.Dense(1, name="y")(x)}, tasks=[tasks.Regression("y", normalize=False)])
    scaled = heads.dense_head(x, "z", 1, "linear", destandardize=True)
    mtl.MultiTaskModel(x, {"z": scaled}, tasks=[tasks.Regression("z")])


def test_task_config_normalize():
    entry = config_lib.TaskConfig(name="hours", type="regression")
    assert entry.build().normalize is True
    assert config_lib.TaskConfig(name="hours", type="regression", normalize=False).build().normalize is False
    with pytest.raises(config_lib.ConfigError, match=r"tasks\[0\].normalize applies to regression tasks only"):
        config_lib.TaskConfig(name="a", type="binary", normalize=False).check("tasks[0]")
