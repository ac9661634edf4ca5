"""ZeroInflatedLognormal: the ZILN loss against its definition, masking, metrics, checks and serving."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.export import signatures
from keras_mtl.tasks import Binary, ZeroInflatedLognormal


def _ziln_by_hand(y, logit, mu, raw_scale):
    p = 1 / (1 + math.exp(-logit))
    sigma = math.log1p(math.exp(raw_scale))
    loss = -math.log(p) if y > 0 else -math.log(1 - p)
    if y > 0:
        loss += math.log(y * sigma * math.sqrt(2 * math.pi)) + (math.log(y) - mu) ** 2 / (2 * sigma**2)
    return loss


def test_loss_is_the_zero_inflated_lognormal_likelihood_on_labelled_examples():
    model = mtl.models.shared_bottom(keras.Input((2,)), [ZeroInflatedLognormal("ltv")])
    y = np.array([0.0, 12.5, np.nan, 3.0], "float32")
    raw = np.array([[0.3, 1.0, 0.2], [1.2, 2.0, -0.5], [0.0, 0.0, 0.0], [-0.4, 0.5, 1.5]], "float32")
    losses, counts = model.task_losses({"ltv": y}, {"ltv": tf.constant(raw)})
    expected = np.mean([_ziln_by_hand(y[i], *raw[i]) for i in (0, 1, 3)])
    assert float(losses["ltv"]) == pytest.approx(expected, rel=1e-5)
    assert float(counts["ltv"]) == 3


def test_learns_served_value_and_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2)).astype("float32")
    buys = rng.random(4000) < 1 / (1 + np.exp(-2 * x[:, 0]))
    value = np.where(buys, np.exp(1.0 + 0.8 * x[:, 1] + 0.3 * rng.normal(size=4000)), 0.0).astype("float32")
    value[::10] = np.nan  # missing
    model = mtl.models.shared_bottom(keras.Input((2,), name="x"), [Binary("click"), ZeroInflatedLognormal("ltv")])
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit({"x": x}, {"click": (x[:, 0] > 0).astype("float32"), "ltv": value}, epochs=5,
                        batch_size=128, verbose=0).history
    assert history["ltv_positive_auc"][-1] > 0.8 and history["ltv_mae"][-1] < history["ltv_mae"][0]
    served = signatures.serve(model, {"x": x[:6]})
    raw = model.predict({"x": x[:6]}, verbose=0)["ltv"]
    np.testing.assert_allclose(served["ltv_value"], np.asarray(ZeroInflatedLognormal.expected_value(raw)), rtol=1e-5)
    assert signatures.output_keys(model)["ltv"] == ["ltv", "ltv_value"]
    loaded = mtl.saving.load_model(mtl.saving.save_model(model, tmp_path / "ltv.keras"))
    np.testing.assert_allclose(loaded.predict({"x": x[:6]}, verbose=0)["ltv"], raw, rtol=1e-6)


def test_bad_values_are_named():
    model = mtl.models.shared_bottom(keras.Input((2,), name="x"), [ZeroInflatedLognormal("ltv")])
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="Task 'ltv' \\(label 'ltv'\\) in .*: value -2.0 at row 1 is negative"):
        model.fit({"x": np.zeros((3, 2), "float32")}, {"ltv": np.array([1.0, -2.0, 0.0], "float32")}, verbose=0)
    assert ZeroInflatedLognormal("ltv").label_rule(tf.constant(-1.0), tf.constant(2.0))[0].numpy() == False  # noqa: E712
    task = mtl.config.from_dict(mtl.config.Config, {
        "name": "shop", "tasks": [{"name": "ltv", "type": "zero_inflated_lognormal"}]}).tasks[0].build()
    assert isinstance(task, ZeroInflatedLognormal)
