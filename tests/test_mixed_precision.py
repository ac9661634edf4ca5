"""Mixed precision: float16/bfloat16 trunks, float32 heads, correct loss scaling for every kind of method."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl


@pytest.fixture
def mixed_policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
@pytest.mark.parametrize("mixed_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize("weighting", ["fixed", "uncertainty", "pcgrad", "mgda"])
def test_mixed_precision_trains_with_every_kind_of_method(tmp_path, rng, mixed_policy, weighting):
    x = rng.normal(size=(64, 4)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1] * 3.0}
    model = mtl.models.shared_bottom(
        keras.Input((4,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")], trunk=mtl.trunks.mlp([16])
    )
    assert model.get_layer("trunk_dense_0").compute_dtype != "float32"
    assert model.get_layer("a").compute_dtype == "float32"  # heads stay float32
    model.compile(optimizer=keras.optimizers.Adam(0.01), weighting=weighting)
    if mixed_policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0).history
    assert all(np.isfinite(v).all() for v in history.values())
    assert history["b_loss"][-1] < history["b_loss"][0]
    path = mtl.export.export_saved_model(model, tmp_path)
    served = tf.saved_model.load(path).signatures["serving_default"](x=tf.constant(x[:3]))
    assert served["a"].dtype == tf.float32 and served["b"].dtype == tf.float32


@pytest.mark.slow
def test_gradient_method_sees_unscaled_gradients(rng):
    """With a huge loss scale, gradient methods must still see (and apply) the true gradients:
    one step of PCGrad under mixed_float16 matches float32 closely."""
    x = rng.normal(size=(32, 4)).astype("float32")
    y = {"a": x[:, 0], "b": x[:, 1]}

    def one_step(policy):
        keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(3)
            model = mtl.models.shared_bottom(
                keras.Input((4,)), [mtl.tasks.Regression("a"), mtl.tasks.Regression("b")], trunk=mtl.trunks.mlp([8])
            )
            model.compile(optimizer=keras.optimizers.SGD(0.1), weighting="mgda")
            before = [w.copy() for w in model.get_weights()]
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            return [w - b for w, b in zip(model.get_weights(), before)]
        finally:
            keras.mixed_precision.set_global_policy("float32")

    full, mixed = one_step("float32"), one_step("mixed_float16")
    for f, m in zip(full, mixed):
        np.testing.assert_allclose(m, f, atol=5e-3)
    assert max(np.abs(f).max() for f in full) > 1e-3
