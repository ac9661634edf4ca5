"""Calibrated heads: Platt and isotonic maps fitted on held-out data, in the graph, saved and served."""

import keras
import numpy as np
import pytest

import keras_mtl as mtl
from keras_mtl.calibration import Calibration, ExpectedCalibrationError, calibrate, group_auc, reliability
from keras_mtl.export import signatures
from keras_mtl.tasks import Binary, Multiclass, Regression


def _overconfident(n=20000, seed=0):
    """A model whose click probability is sigmoid(3 x) on data where clicks follow sigmoid(x)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1)).astype("float32")
    click = (rng.random(n) < 1 / (1 + np.exp(-x[:, 0]))).astype("float32")
    model = mtl.models.shared_bottom(keras.Input((1,), name="x"), [Binary("click")], trunk=lambda t: t)
    model.get_layer("click").set_weights([np.array([[3.0]], "float32"), np.zeros(1, "float32")])
    return model, x, click


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_fixes_an_overconfident_model_on_new_data(method):
    model, x, click = _overconfident()
    half = len(x) // 2
    calibrated = calibrate(model, ({"x": x[:half]}, {"click": click[:half]}), method=method)
    before = reliability(click[half:], model.predict({"x": x[half:]}, verbose=0)["click"])
    after = reliability(click[half:], calibrated.predict({"x": x[half:]}, verbose=0)["click"])
    assert before["ece"] > 0.08
    assert after["ece"] < 0.03 and after["logloss"] < before["logloss"]  # from 0.16
    if method == "platt":
        report = calibrated.calibration["click"]
        assert report["a"] == pytest.approx(1 / 3, abs=0.03) and report["b"] == pytest.approx(0.0, abs=0.05)
    # The map is monotone: calibration never reorders examples (the AUC is unchanged).
    grid = np.linspace(0.001, 0.999, 500, dtype="float32")[:, None]
    mapped = np.asarray(calibrated.get_layer("click_calibration")(grid)).ravel()
    assert np.all(np.diff(mapped) >= -1e-7)


def test_isotonic_layer_interpolates_its_knots():
    layer = Calibration("isotonic", knots=2)
    layer.build((None, 1))
    layer.set_weights([np.array([0.0, 0.2, 0.6, 1.0], "float32"), np.array([0.1, 0.1, 0.5, 0.9], "float32")])
    p = np.array([[0.0], [0.1], [0.4], [0.6], [0.8], [1.0]], "float32")
    np.testing.assert_allclose(np.asarray(layer(p)).ravel(), np.interp(p.ravel(), [0, 0.2, 0.6, 1], [0.1, 0.1, 0.5, 0.9]), atol=1e-6)


def test_calibrated_model_serves_saves_and_recalibrates(tmp_path):
    model, x, click = _overconfident(4000)
    data = ({"x": x}, {"click": click})
    calibrated = calibrate(model, data, method="isotonic")
    expected = calibrated.predict({"x": x[:8]}, verbose=0)["click"].ravel()
    served = signatures.serve(calibrated, {"x": x[:8]})
    np.testing.assert_allclose(served["click"], expected, rtol=1e-6)
    path = mtl.saving.save_model(calibrated, tmp_path / "calibrated.keras")
    loaded = mtl.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict({"x": x[:8]}, verbose=0)["click"].ravel(), expected, rtol=1e-6)
    again = calibrate(calibrated, data, method="platt")
    assert [layer.name for layer in again.layers if isinstance(layer, Calibration)] == ["click_calibration"]
    assert again.get_layer("click_calibration").method == "platt"
    # Calibrating one task keeps another's calibration.
    two = mtl.models.shared_bottom(keras.Input((1,), name="x"), [Binary("click"), Binary("view")])
    y2 = {"click": click, "view": 1 - click}
    both = calibrate(two, ({"x": x}, y2))
    once_more = calibrate(both, ({"x": x}, y2), tasks=["click"], method="isotonic")
    assert once_more.get_layer("view_calibration") is both.get_layer("view_calibration")
    assert once_more.get_layer("click_calibration").method == "isotonic"
    # The uncalibrated model is untouched, and the calibrated copy shares its other weights.
    assert not any(isinstance(layer, Calibration) for layer in model.layers)
    assert again.get_layer("click") is model.get_layer("click")


def test_conditional_task_is_calibrated_on_its_sample_space():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 2)).astype("float32")
    click = (x[:, 0] > 0).astype("float32")
    buy = np.where(click == 1, (rng.random(600) < 0.3).astype("float32"), np.nan).astype("float32")
    model = mtl.models.shared_bottom(
        keras.Input((2,), name="x"), [Binary("click"), Binary("buy", given="click", entire_space=True)]
    )
    calibrated = calibrate(model, ({"x": x}, {"click": click, "buy": buy}))
    assert sum(calibrated.calibration["buy"]["before"]["count"]) == click.sum()
    assert sum(calibrated.calibration["click"]["before"]["count"]) == 600
    served = signatures.serve(calibrated, {"x": x[:4]})
    np.testing.assert_allclose(served["click_and_buy"], served["click"] * served["buy"], rtol=1e-6)


def test_ece_metric_in_compile_and_the_bad_requests():
    model, x, click = _overconfident(2000)
    model.compile(optimizer="sgd", metrics={"click": [ExpectedCalibrationError(num_bins=10)]})
    result = model.evaluate({"x": x}, {"click": click}, verbose=0, return_dict=True)
    assert result["click_ece"] == pytest.approx(reliability(click, model.predict({"x": x}, verbose=0)["click"], num_bins=10)["ece"], abs=1e-4)
    multi = mtl.models.shared_bottom(keras.Input((1,), name="x"), [Binary("click"), Regression("spend"), Multiclass("tier", 3)])
    y = {"click": click, "spend": x[:, 0], "tier": np.zeros(len(x), "int64")}
    with pytest.raises(ValueError, match="task 'spend' is a Regression task; calibration maps a probability"):
        calibrate(multi, ({"x": x}, y), tasks=["spend"])
    with pytest.raises(ValueError, match="task 'tier' is a Multiclass task"):
        calibrate(multi, ({"x": x}, y), tasks="tier")
    with pytest.raises(ValueError, match="no task 'clicks'; its tasks are \\['click', 'spend', 'tier'\\]"):
        calibrate(multi, ({"x": x}, y), tasks=["clicks"])
    with pytest.raises(ValueError, match="method must be one of \\['platt', 'isotonic'\\]"):
        calibrate(multi, ({"x": x}, y), method="beta")
    with pytest.raises(ValueError, match="task 'click' needs labelled held-out examples of both classes"):
        calibrate(multi, ({"x": x}, {**y, "click": np.ones(len(x), "float32")}))
    with pytest.raises(ValueError, match="pass held-out data as \\(x, y\\)"):
        calibrate(multi, {"x": x})
    with pytest.raises(ValueError, match="no group has both a positive and a negative"):
        group_auc([1, 1], [0.2, 0.3], ["u", "v"])


def test_saved_calibration_shows_in_tensorboard_and_the_report(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from keras_mtl.report import render_report

    model, x, click = _overconfident(2000)
    calibrated = calibrate(model, ({"x": x}, {"click": click}))
    out = mtl.calibration.save_calibration(calibrated.calibration, tmp_path / "logs" / "run1" / "calibration")
    events = EventAccumulator(out)
    events.Reload()
    assert "calibration/click" in events.Tags()["tensors"]
    page = open(render_report(tmp_path / "logs")).read()
    assert "Calibration of click" in page


@pytest.mark.slow
def test_the_export_serves_the_calibrated_probability(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 2)).astype("float32")
    click = (x[:, 0] > 0).astype("float32")
    buy = np.where(click == 1, (rng.random(600) < 0.3).astype("float32"), np.nan).astype("float32")
    model = mtl.models.esmm(keras.Input((2,), name="x"), Binary("click"), Binary("buy"))
    model.get_layer("click").set_weights([w * 4 for w in model.get_layer("click").get_weights()])
    calibrated = calibrate(model, ({"x": x}, {"click": click, "buy": buy}), method="isotonic")
    path = mtl.export.export_saved_model(calibrated, str(tmp_path / "ads"))
    report = mtl.export.verify(path, {"x": x[:16]}, calibrated)  # TF Serving's loader, every signature
    assert report["max_abs_diff"] < 1e-5
    served = mtl.export.Predictor(path).predict({"x": x[:16]})
    expected = calibrated.predict({"x": x[:16]}, verbose=0)
    np.testing.assert_allclose(served["click"], expected["click"].ravel(), atol=1e-6)
    np.testing.assert_allclose(served["click_and_buy"], (expected["click"] * expected["buy"]).ravel(), atol=1e-6)
    assert np.abs(served["click"] - model.predict({"x": x[:16]}, verbose=0)["click"].ravel()).max() > 1e-3
