"""`compile(learning_rate_multipliers=...)`: discriminative learning rates, exact for each optimizer.

Most tests train two copies of one tiny model from the same weights for one
step, one with multipliers and one without: with plain SGD the step is
`-lr * gradient`, so each covered variable must move exactly `factor` times
as far as in the plain run, and every other variable exactly as far.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import tasks

LR = 0.5


@pytest.fixture
def data(rng):
    x = rng.normal(size=(16, 3)).astype("float32")
    return x, {"a": (x[:, 0] > 0).astype("float32"), "b": (x[:, 1] - x[:, 2]).astype("float32")}


def build(tower=(4,)):
    # A linear trunk and no tower by default in the Adam tests: every weight gets a non-zero gradient.
    keras.utils.set_random_seed(7)
    return mtl.models.shared_bottom(
        keras.Input((3,)),
        [tasks.Binary("a", tower=list(tower)), tasks.Regression("b", normalize=False)],
        trunk=mtl.trunks.mlp([8], activation="linear"),
    )


def one_step(data, optimizer, tower=(4,), **compile_kwargs):
    """(weights before, weights after one full-batch step, the model)."""
    model = build(tower)
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=optimizer, **compile_kwargs)
    model.fit(*data, batch_size=16, epochs=1, verbose=0, shuffle=False)
    return before, model.get_weights(), model


def factors(model, multipliers):
    """The factor each of `model.weights` should be updated with (1 where no key covers it)."""
    covered = {
        id(v): f for v, f in mtl._multipliers.resolve(model, mtl._multipliers.check(multipliers))
    }
    return [covered.get(id(v), 1.0) for v in model.weights]


def assert_scaled_steps(plain, scaled, model, multipliers, exact=True):
    """Each weight moved `factor` times its plain step: equal where the factor is 1 (bit for bit if `exact`)."""
    (w0, p, _), (s0, s, _) = plain, scaled
    for before, a, b, f, v in zip(w0, p, s, factors(model, multipliers), model.weights):
        step = before - a
        assert np.abs(step).max() > 1e-3, v.path  # the step moves every variable measurably
        if f == 1.0 and exact:
            np.testing.assert_array_equal(b, a, err_msg=v.path)
        else:
            np.testing.assert_allclose(before - b, f * step, rtol=0, atol=2e-6, err_msg=v.path)


# ------------------------------------------------------------------- SGD
@pytest.mark.parametrize(
    "schedule, xla",
    [(False, False), (True, False), pytest.param(False, True, marks=pytest.mark.slow)],  # XLA: a compile
    ids=["float", "schedule", "xla"],
)
def test_sgd_step_is_learning_rate_times_factor(data, schedule, xla):
    def sgd():
        lr = keras.optimizers.schedules.ExponentialDecay(LR, decay_steps=10, decay_rate=0.5) if schedule else LR
        return keras.optimizers.SGD(lr)

    multipliers = {"trunk_dense_0": 0.1, "a": 2.0, "b": 0.5}
    plain = one_step(data, sgd(), jit_compile=xla)
    scaled = one_step(data, sgd(), jit_compile=xla, learning_rate_multipliers=multipliers)
    # Under XLA the two programs differ, so their fusions (and last bits) may too.
    assert_scaled_steps(plain, scaled, scaled[2], multipliers, exact=not xla)


def test_sgd_step_matches_the_gradient_by_hand(data):
    # The one-step change is lr x factor x dLoss/dw, with the gradient taken here by hand.
    multipliers = {"trunk_dense_0": 0.25, "a": 3.0}
    model = build()
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(LR), learning_rate_multipliers=multipliers)
    x, y = data
    with tf.GradientTape() as tape:
        losses, _ = model.task_losses(y, model(x, training=True))
        loss = tf.add_n(list(losses.values()))  # fixed weighting, each task's weight 1
    grads = dict(zip((id(v) for v in model.trainable_variables), tape.gradient(loss, model.trainable_variables)))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for w0, w1, f, v in zip(before, model.get_weights(), factors(model, multipliers), model.weights):
        np.testing.assert_allclose(w0 - w1, LR * f * grads[id(v)].numpy(), rtol=1e-5, atol=1e-7, err_msg=v.path)


def test_task_key_means_the_tasks_own_layers_not_the_trunk(data):
    model = build()
    covered = {v.path for v, _ in mtl._multipliers.resolve(model, {"a": 2.0})}
    assert covered == {"a_tower_0/kernel", "a_tower_0/bias", "a/kernel", "a/bias"}
    # A one-task model: the task's own layers are its head, after the representation.
    single = mtl.models.shared_bottom(keras.Input((3,)), [tasks.Binary("a")], trunk=mtl.trunks.mlp([4]))
    assert {v.path for v, _ in mtl._multipliers.resolve(single, {"a": 2.0})} == {"a/kernel", "a/bias"}
    single.compile(optimizer="sgd", learning_rate_multipliers={"trunk_dense_0": 0.1, "a": 2.0})


# ------------------------------------------------------------------ Adam
def test_adam_first_step_is_plus_or_minus_learning_rate_times_factor(data):
    # Adam's first step is lr * g / (|g| + epsilon) per element: +-lr, here up to 1e-6 relative.
    multipliers = {"trunk_dense_0": 0.1, "a": 4.0}
    adam = keras.optimizers.Adam(0.01, epsilon=1e-12)
    w0, w1, model = one_step(data, adam, tower=(), learning_rate_multipliers=multipliers)
    for before, after, f, v in zip(w0, w1, factors(model, multipliers), model.weights):
        np.testing.assert_allclose(np.abs(before - after), 0.01 * f, rtol=1e-3, err_msg=v.path)


def test_adamw_decays_covered_variables_at_the_scaled_rate(data):
    # AdamW: w <- w - w * wd * lr * factor (the decay), then Adam's step of +-lr * factor;
    # biases are excluded from the decay and must not be decayed, covered or not.
    multipliers = {"trunk_dense_0": 0.1, "a": 4.0}
    lr, wd = 0.01, 2.0

    def adamw():
        opt = keras.optimizers.AdamW(lr, weight_decay=wd, epsilon=1e-12)
        opt.exclude_from_weight_decay(var_names=["bias"])
        return opt

    w0, w1, model = one_step(data, adamw(), tower=(), learning_rate_multipliers=multipliers)
    _, adam, _ = one_step(data, keras.optimizers.Adam(lr, epsilon=1e-12), tower=())
    for before, after, plain, f, v in zip(w0, w1, adam, factors(model, multipliers), model.weights):
        sign = np.sign(before - plain)  # the gradient's sign, from plain Adam's first step
        decayed = before if v.path.endswith("bias") else before * (1 - wd * lr * f)
        np.testing.assert_allclose(after, decayed - lr * f * sign, rtol=0, atol=1e-6, err_msg=v.path)


def test_lazy_adam_updates_only_looked_up_rows_at_the_scaled_rate(rng):
    ids = keras.Input((2,), dtype="int32", name="ids")
    table = keras.layers.Embedding(10, 3, name="table")
    h = keras.layers.Flatten(name="flat")(table(ids))
    out = keras.layers.Dense(1, activation="sigmoid", name="a")(h)
    model = mtl.MultiTaskModel(ids, {"a": out}, tasks=[tasks.Binary("a")])
    before = model.get_layer("table").embeddings.numpy().copy()
    model.compile(optimizer=mtl.optimizers.LazyAdam(0.01, epsilon=1e-12), learning_rate_multipliers={"table": 0.1})
    x = np.array([[1, 2], [2, 5]] * 4, dtype="int32")
    model.fit(x, np.float32([1, 0] * 4), batch_size=8, epochs=1, verbose=0)
    step = np.abs(before - model.get_layer("table").embeddings.numpy())
    np.testing.assert_allclose(step[[1, 2, 5]], 0.001, rtol=1e-3)  # 0.01 x 0.1
    np.testing.assert_array_equal(step[[0, 3, 4, 6, 7, 8, 9]], 0.0)


def test_loss_scale_optimizer_passes_the_multipliers_to_its_inner_optimizer(data):
    multipliers = {"trunk_dense_0": 0.1, "b": 2.0}
    plain = one_step(data, keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(LR)))
    scaled = one_step(
        data, keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(LR)), learning_rate_multipliers=multipliers
    )
    assert_scaled_steps(plain, scaled, scaled[2], multipliers)


# ------------------------------------------------ gradient weighting step
def test_pcgrad_custom_step_applies_the_multipliers(data):
    multipliers = {"trunk_dense_0": 0.1, "a": 2.0}
    plain = one_step(data, keras.optimizers.SGD(LR), weighting="pcgrad")
    scaled = one_step(data, keras.optimizers.SGD(LR), weighting="pcgrad", learning_rate_multipliers=multipliers)
    assert_scaled_steps(plain, scaled, scaled[2], multipliers)


def test_compiling_again_without_multipliers_drops_them(data):
    optimizer = keras.optimizers.SGD(LR)
    plain = one_step(data, keras.optimizers.SGD(LR))
    model = build()
    model.compile(optimizer=optimizer, learning_rate_multipliers={"a": 2.0})
    model.compile(optimizer=optimizer)
    assert model.get_compile_config()["learning_rate_multipliers"] is None
    model.fit(*data, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(plain[1], model.get_weights()):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------- saving
def test_multipliers_survive_save_load_and_copy_model(data, tmp_path):
    multipliers = {"trunk_dense_0": 0.1, "a": 2.0}
    model = build()
    model.compile(optimizer=keras.optimizers.SGD(LR), learning_rate_multipliers=multipliers)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    copied = mtl.saving.copy_model(model)
    plain = build()  # the same weights, no multipliers: its step must differ
    plain.compile(optimizer=keras.optimizers.SGD(LR))
    after = {}
    for name, m in (("original", model), ("loaded", loaded), ("copied", copied), ("plain", plain)):
        assert m.get_compile_config()["learning_rate_multipliers"] == (None if name == "plain" else multipliers)
        m.fit(*data, batch_size=16, epochs=1, verbose=0, shuffle=False)
        after[name] = m.get_weights()
    for name in ("loaded", "copied"):
        for a, b in zip(after["original"], after[name]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-7, err_msg=name)
    assert max(np.abs(a - b).max() for a, b in zip(after["original"], after["plain"])) > 1e-3


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "multipliers, error, words",
    [
        ({"trunkk": 0.1}, ValueError, ["'trunkk'", "Tasks: ['a', 'b']", "'trunk_dense_0'", "'a_tower_0'"]),
        ({"a": 0}, ValueError, ["learning_rate_multipliers['a'] is 0", "trainable = False"]),
        ({"a": -1.0}, ValueError, ["learning_rate_multipliers['a']", "> 0", "-1.0"]),
        ({"a": float("nan")}, ValueError, ["learning_rate_multipliers['a']", "finite"]),
        ({"a": True}, TypeError, ["learning_rate_multipliers['a']", "positive number", "True"]),
        ({"a": "0.1"}, TypeError, ["learning_rate_multipliers['a']", "'0.1'"]),
        ({1: 0.1}, TypeError, ["keys", "1"]),
        ([("a", 0.1)], TypeError, ["dict", "list"]),
        ({"a": 2.0, "a_tower_0": 0.5}, ValueError, ["'a'", "'a_tower_0'", "a_tower_0/kernel", "both cover"]),
        ({"representation": 2.0}, ValueError, ["'representation'", "no trainable variables"]),
    ],
    ids=["unknown", "zero", "negative", "nan", "bool", "string", "key", "list", "overlap", "weightless"],
)
def test_bad_multipliers_name_the_key(multipliers, error, words):
    model = build()
    with pytest.raises(error) as raised:
        model.compile(optimizer="sgd", learning_rate_multipliers=multipliers)
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


def test_multipliers_without_an_optimizer_are_refused():
    with pytest.raises(ValueError, match="pass an optimizer"):
        build().compile(optimizer=None, learning_rate_multipliers={"a": 2.0})


def test_frozen_layer_is_refused_saying_it_is_frozen():
    model = build()
    model.get_layer("trunk_dense_0").trainable = False
    with pytest.raises(ValueError, match=r"layer 'trunk_dense_0' .*no trainable variables \(frozen"):
        model.compile(optimizer="sgd", learning_rate_multipliers={"trunk_dense_0": 0.1})


def test_optimizers_it_cannot_scale_exactly_are_refused():
    model = build()
    multi = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(keras.optimizers.SGD()))
    with pytest.raises(ValueError, match="MultiOptimizer"):
        model.compile(optimizer=multi, learning_rate_multipliers={"a": 2.0})
    with pytest.raises(ValueError, match="Muon.*Pass weight_decay=None, adam_weight_decay=None"):
        model.compile(optimizer=keras.optimizers.Muon(), learning_rate_multipliers={"a": 2.0})
    muon = keras.optimizers.Muon(weight_decay=None, adam_weight_decay=None)
    model.compile(optimizer=muon, learning_rate_multipliers={"a": 2.0})  # no decay to scale: accepted


# ------------------------------------------------------------- Mirrored
@pytest.mark.slow
def test_two_devices_equal_one(rng):
    from test_distributed import GLOBAL_BATCH, assert_exact_on_two_devices

    x = rng.normal(size=(3 * GLOBAL_BATCH, 3)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32"), "b": (x[:, 1] - x[:, 2]).astype("float32")}
    assert_exact_on_two_devices(
        build, x, y, ["loss", "a_loss", "b_loss"],
        learning_rate_multipliers={"trunk_dense_0": 0.1, "a": 2.0},
    )
