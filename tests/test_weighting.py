"""Each weighting method against its paper's definition, on cases checkable by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import weighting
from keras_mtl.weighting import solvers


def method(cls, tasks=("a", "b"), **kwargs):
    m = cls(**kwargs)
    m.task_names = list(tasks)
    m.build_state(len(tasks))
    m.built = True
    return m


def gram(g):
    g = tf.constant(g, tf.float32)
    return tf.matmul(g, g, transpose_b=True)


def combined(weights, g):
    return np.asarray(weights) @ np.asarray(g, dtype=np.float32)


RANDOM = np.random.default_rng(3).normal(size=(3, 6)).astype("float32")


def test_registry():
    assert weighting.available() == sorted([
        "aligned_mtl", "cagrad", "dwa", "famo", "fixed", "gls", "graddrop", "gradnorm",
        "gradvac", "imtl", "mgda", "nash_mtl", "pcgrad", "rlw", "uncertainty",
    ])
    assert isinstance(weighting.get("mgda", normalization="l2"), weighting.MGDA)
    with pytest.raises(ValueError, match="Unknown weighting method 'nope'"):
        weighting.get("nope")
    with pytest.raises(ValueError, match="mode must be one of"):
        weighting.get("pcgrad", mode="activations")
    with pytest.raises(ValueError, match=r"GradDrop: mode must be one of \['parameters'\]"):
        weighting.get("graddrop", mode="representation")


# ----------------------------------------------------------- gradient methods
def test_pcgrad_two_conflicting_vectors():
    g = [[1.0, 0.0], [-1.0, 1.0]]  # g1 . g2 = -1 < 0
    w = method(weighting.PCGrad).aggregate(gram(g), tf.ones(2), True)
    # g1' = g1 - (-1/2) g2 = (0.5, 0.5); g2' = g2 - (-1/1) g1 = (0, 1)
    np.testing.assert_allclose(combined(w, g), [0.5, 1.5], atol=1e-6)


def test_pcgrad_leaves_agreeing_gradients_alone():
    g = [[1.0, 0.5], [0.5, 1.0]]
    w = method(weighting.PCGrad).aggregate(gram(g), tf.ones(2), True)
    np.testing.assert_allclose(w, [1.0, 1.0])


def test_mgda_two_tasks_closed_form():
    g1, g2 = RANDOM[0], RANDOM[1]
    gamma = np.clip((g2 - g1) @ g2 / np.sum((g1 - g2) ** 2), 0, 1)
    w = method(weighting.MGDA).aggregate(gram([g1, g2]), tf.ones(2), True)
    np.testing.assert_allclose(w, [gamma, 1 - gamma], atol=1e-4)


def test_mgda_min_norm_optimality_three_tasks():
    k = gram(RANDOM).numpy()
    w = solvers.min_norm_weights(tf.constant(k), iterations=500).numpy()
    assert w.min() >= 0 and abs(w.sum() - 1) < 1e-5
    # KKT on the simplex: (K w)_i >= w^T K w, with equality where w_i > 0.
    kw, value = k @ w, w @ k @ w
    assert np.all(kw >= value - 1e-3 * abs(value) - 1e-5)
    assert np.all(np.abs(kw[w > 1e-3] - value) <= 1e-2 * abs(value) + 1e-5)


def test_cagrad_c0_is_the_mean_gradient():
    w = method(weighting.CAGrad, c=0.0, tasks="abc").aggregate(gram(RANDOM), tf.ones(3), True)
    np.testing.assert_allclose(w, [1 / 3] * 3, atol=1e-6)


def test_cagrad_stays_in_the_ball_and_improves_the_worst_task():
    c = 0.5
    w = method(weighting.CAGrad, c=c, tasks="abc", iterations=300).aggregate(gram(RANDOM), tf.ones(3), True)
    d = combined(w, RANDOM) * (1 + c**2)
    g0 = RANDOM.mean(0)
    assert np.linalg.norm(d - g0) <= c * np.linalg.norm(g0) * (1 + 1e-3)
    assert (RANDOM @ d).min() >= (RANDOM @ g0).min() - 1e-5


@pytest.mark.parametrize("case", ["random", "opposed", "aligned", "one_dominant"])
def test_cagrad_two_task_closed_form_matches_a_fine_grid(case):
    g = {
        "random": RANDOM[:2],
        "opposed": np.stack([RANDOM[0], -0.5 * RANDOM[0] + 0.1 * RANDOM[1]]),
        "aligned": np.stack([RANDOM[0], 2.0 * RANDOM[0]]),
        "one_dominant": np.stack([RANDOM[0] * 50.0, RANDOM[1]]),
    }[case].astype("float64")
    c = 0.4
    w = method(weighting.CAGrad, c=c).aggregate(gram(g), tf.ones(2), True).numpy()
    # The dual problem by brute force over w = (a, 1 - a): the paper's definition.
    g0, sqrt_phi = g.mean(0), c * np.linalg.norm(g.mean(0))
    a = np.linspace(0.0, 1.0, 100001)
    gw = a[:, None] * g[0] + (1 - a[:, None]) * g[1]
    best = a[np.argmin(gw @ g0 + sqrt_phi * np.linalg.norm(gw, axis=1))]
    gw_best = best * g[0] + (1 - best) * g[1]
    d_ref = (g0 + sqrt_phi / np.linalg.norm(gw_best) * gw_best) / (1 + c**2)
    np.testing.assert_allclose(w @ g, d_ref, rtol=1e-3, atol=1e-4 * np.linalg.norm(g0))


def test_imtl_equal_projections_on_unit_gradients():
    w = method(weighting.IMTL, tasks="abc").aggregate(gram(RANDOM), tf.ones(3), True).numpy()
    g = combined(w, RANDOM)
    units = RANDOM / np.linalg.norm(RANDOM, axis=1, keepdims=True)
    projections = units @ g
    np.testing.assert_allclose(projections, projections[0], rtol=1e-4)
    assert abs(w.sum() - 1) < 1e-5


def test_nash_mtl_solves_the_bargaining_equation():
    k = gram(RANDOM)
    a = method(weighting.NashMTL, tasks="abc").aggregate(k, tf.ones(3), True).numpy()
    assert np.all(a > 0)
    np.testing.assert_allclose(a * (k.numpy() @ a), 1.0, rtol=1e-4)


def test_aligned_mtl_makes_an_orthogonal_equal_norm_system():
    k = gram(RANDOM).numpy()
    values, vectors = np.linalg.eigh(k)
    b = np.sqrt(values.min()) * vectors @ np.diag(values**-0.5) @ vectors.T
    aligned = b @ RANDOM
    np.testing.assert_allclose(aligned @ aligned.T, values.min() * np.eye(3), atol=1e-3 * values.max())
    w = method(weighting.AlignedMTL, tasks="abc").aggregate(tf.constant(k), tf.ones(3), True)
    np.testing.assert_allclose(combined(w, RANDOM), aligned.sum(0), rtol=1e-3, atol=1e-4)


def test_gradnorm_moves_towards_equal_weighted_norms():
    m = method(weighting.GradNorm, learning_rate=0.01)
    k = gram([[1.0, 0.0], [0.0, 3.0]])
    before = None
    for _ in range(60):
        m.aggregate(k, tf.constant([1.0, 1.0]), True)
        w = m.task_weights.numpy()
        gap = abs(w[0] * 1.0 - w[1] * 3.0)
        before = gap if before is None else before
    assert gap < 0.1 < before and abs(w.sum() - 2) < 1e-5


def test_gradnorm_favours_the_slower_task():
    m = method(weighting.GradNorm, learning_rate=0.01, alpha=1.5)
    k = gram([[1.0, 0.0], [0.0, 1.0]])
    m.aggregate(k, tf.constant([1.0, 1.0]), True)  # records L(0)
    for _ in range(30):
        m.aggregate(k, tf.constant([0.2, 0.9]), True)  # task b trains slower
    w = m.task_weights.numpy()
    assert w[1] > w[0]


def test_gradvac_reaches_its_target_similarity():
    m = method(weighting.GradVac, beta=0.01)
    m.targets.assign([[0.0, 0.5], [0.5, 0.0]])
    g = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")  # cos = 0 < target 0.5
    w = m.aggregate(gram(g), tf.ones(2), False)
    # Paper's rule with ||g|| = 1, cos = 0, target 0.5: coef = 0.5 / sqrt(1 - 0.25),
    # and g1' = g1 + coef g2 then has cos(g1', g2) = 0.5 exactly (same for g2').
    coef = 0.5 / np.sqrt(1 - 0.25)
    g1p = g[0] + coef * g[1]
    assert abs(g1p @ g[1] / np.linalg.norm(g1p) - 0.5) < 1e-6
    np.testing.assert_allclose(w, [1 + coef, 1 + coef], rtol=1e-5)


def test_graddrop_keeps_agreement_and_one_sign_on_conflict():
    g = tf.constant([[1.0, 2.0, -1.0], [3.0, -2.0, -4.0]])
    m = method(weighting.GradDrop)
    out, _ = m.aggregate_vectors(g, tf.ones(2))
    out = out.numpy()
    assert out[0] == 4.0 and out[2] == -5.0  # same sign everywhere: all kept
    assert out[1] in (2.0, -2.0)  # conflict: only one sign survives
    leaky = method(weighting.GradDrop, leak=1.0)
    np.testing.assert_allclose(leaky.aggregate_vectors(g, tf.ones(2))[0], [4.0, 0.0, -5.0])


def test_graddrop_keep_probability_is_the_sign_purity():
    # element: +3 (task a) and -1 (task b): P = (1 + 2/4)/2 = 0.75
    g = tf.constant([[3.0] * 4000, [-1.0] * 4000])
    out = method(weighting.GradDrop).aggregate_vectors(g, tf.ones(2))[0].numpy()
    assert abs(np.mean(out == 3.0) - 0.75) < 0.03


# ---------------------------------------------------------- loss methods
def test_uncertainty_optimum_variance_equals_the_loss():
    m = method(weighting.Uncertainty)
    losses = tf.constant([0.5, 2.0])
    opt = keras.optimizers.SGD(0.5)
    for _ in range(300):
        with tf.GradientTape() as tape:
            total, _ = m.combine(losses, losses, True)
        opt.apply_gradients(zip(tape.gradient(total, [m.log_variance]), [m.log_variance]))
    np.testing.assert_allclose(np.exp(m.log_variance.numpy()), [0.5, 2.0], rtol=1e-3)


def test_dwa_weights_from_a_loss_history():
    m = method(weighting.DWA, temperature=2.0)
    np.testing.assert_allclose(m.weights_for(tf.ones(2), False), [1.0, 1.0])  # first epochs
    for epoch_losses in ([4.0, 1.0], [2.0, 1.0]):
        m.weights_for(tf.constant(epoch_losses), True)
        m.end_epoch()
    r = np.array([2.0 / 4.0, 1.0 / 1.0])
    expected = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    np.testing.assert_allclose(m.weights_for(tf.ones(2), False), expected, rtol=1e-6)


def test_rlw_weights_are_random_on_the_simplex_and_reproducible():
    a, b = method(weighting.RLW), method(weighting.RLW)
    wa = [a.weights_for(tf.ones(2), True).numpy() for _ in range(3)]
    wb = [b.weights_for(tf.ones(2), True).numpy() for _ in range(3)]
    np.testing.assert_array_equal(wa, wb)
    assert not np.allclose(wa[0], wa[1])
    for w in wa:
        assert abs(w.sum() - 1) < 1e-6 and w.min() > 0


def test_gls_gradient_is_the_geometric_mean_gradient():
    theta = tf.Variable([0.3, -0.7])
    m = method(weighting.GLS)
    with tf.GradientTape(persistent=True) as tape:
        losses = tf.stack([theta[0] ** 2 + 1.0, (theta[1] - 1.0) ** 2 + 0.5])
        total, _ = m.combine(losses, losses, True)
        geometric = tf.sqrt(losses[0] * losses[1])
    np.testing.assert_allclose(tape.gradient(total, theta), tape.gradient(geometric, theta), rtol=1e-5)
    np.testing.assert_allclose(total, geometric, rtol=1e-6)


def test_famo_shifts_weight_to_the_task_that_improves_less():
    m = method(weighting.FAMO, gamma_lr=0.5)
    m.weights_for(tf.constant([1.0, 1.0]), True)
    for step in range(1, 20):
        # task a's loss halves every step, task b's barely moves
        m.weights_for(tf.constant([0.5**step, 1.0 - 0.01 * step]), True)
    z = tf.nn.softmax(m.logits).numpy()
    assert z[1] > z[0]


# ----------------------------------------------------------------- in fit
@pytest.mark.slow
@pytest.mark.parametrize("name", weighting.available())
def test_every_method_trains_and_logs_its_weights(name, rng):
    x = rng.normal(size=(48, 4)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1] * 2}
    y["a"][:8] = -1
    model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), weighting=name)
    history = model.fit(x, y, batch_size=16, epochs=3, validation_data=(x, y), verbose=0).history
    assert {"a_weight", "b_weight"} <= set(history)
    assert "val_a_weight" not in history
    assert history["b_loss"][-1] < history["b_loss"][0]
    assert all(np.isfinite(v[-1]) for v in history.values())


def test_representation_mode_needs_an_exact_representation():
    x = keras.Input((4,))
    model = mtl.models.shared_bottom(x, [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")])
    model.compile(optimizer="sgd", weighting=weighting.MGDA(mode="representation"))  # fine
    h = keras.layers.Dense(4, name="shared")(x)
    rep = keras.layers.Identity(name="representation")(h)
    bypass = keras.layers.Concatenate()([rep, h])  # task b reads the trunk around the representation
    odd = mtl.MultiTaskModel(
        x, {"a": keras.layers.Dense(1, name="a")(rep), "b": keras.layers.Dense(1, name="b")(bypass)},
        tasks=[mtl.tasks.Binary("a"), mtl.tasks.Binary("b")], shared_layers=["shared"],
        representation="representation",
    )
    with pytest.raises(ValueError, match="only through layer 'representation'"):
        odd.compile(optimizer="sgd", weighting=weighting.MGDA(mode="representation"))


def test_representation_mode_rejects_a_shared_layer_after_the_representation():
    x = keras.Input((4,))
    rep = keras.layers.Identity(name="representation")(keras.layers.Dense(4, name="shared")(x))
    late = keras.layers.Dense(4, name="late_shared")(rep)
    odd = mtl.MultiTaskModel(
        x, {"a": keras.layers.Dense(1, name="a")(late), "b": keras.layers.Dense(1, name="b")(rep)},
        tasks=[mtl.tasks.Binary("a"), mtl.tasks.Binary("b")], shared_layers=["shared", "late_shared"],
        representation="representation",
    )
    with pytest.raises(ValueError, match=r"\['late_shared'\] reach the outputs around or after it"):
        odd.compile(optimizer="sgd", weighting=weighting.PCGrad(mode="representation"))


@pytest.mark.slow
def test_representation_mode_on_mmoe_whose_gates_read_the_inputs(rng):
    """MMoE as in the paper (gates and experts on the raw inputs): the shared
    experts reach the tasks only through the representation, so the mode is
    exact: one step moves the shared weights as plain SGD on sum_t w_t L_t
    would, and each task's own weights (gates, heads) on its own loss."""
    tasks = [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")]
    deep = mtl.models.mmoe(keras.Input((5,)), tasks, trunk=mtl.trunks.mlp([8]), num_experts=3, expert_units=[4])
    with pytest.raises(ValueError, match="reach the outputs around or after it"):
        deep.compile(optimizer="sgd", weighting=weighting.MGDA(mode="representation"))

    x = rng.normal(size=(64, 5)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32")[:, None], "b": x[:, 1:2]}
    model = mtl.models.mmoe(keras.Input((5,)), tasks, trunk=mtl.trunks.mlp([]), num_experts=3, expert_units=[4])
    lr = 0.5
    model.compile(optimizer=keras.optimizers.SGD(lr), weighting=weighting.MGDA(mode="representation"))
    before = [v.numpy() for v in model.trainable_variables]
    logs = model.train_on_batch(x, y, return_dict=True)
    after = [v.numpy() for v in model.trainable_variables]
    w = {"a": logs["a_weight"], "b": logs["b_weight"]}
    assert 0 < w["a"] < 1 and abs(w["a"] + w["b"] - 1) < 1e-5  # MGDA: a mix of the two

    for v, value in zip(model.trainable_variables, before):
        v.assign(value)
    with tf.GradientTape(persistent=True) as tape:
        losses, _ = model.task_losses(y, model(x, training=True), None)
        weighted = w["a"] * losses["a"] + w["b"] * losses["b"]
        summed = losses["a"] + losses["b"]
    shared = {id(v) for v in model.shared_variables}
    assert len(shared) == 2  # the experts' kernel and bias
    for v, b, a in zip(model.trainable_variables, before, after):
        g = tape.gradient(weighted if id(v) in shared else summed, v)
        np.testing.assert_allclose(a, b - lr * g.numpy(), atol=1e-5, err_msg=v.path)


@pytest.mark.slow
def test_weighting_state_is_saved_with_the_model(tmp_path, rng):
    x = rng.normal(size=(32, 4)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1]}
    model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), weighting="uncertainty")
    model.fit(x, y, epochs=3, verbose=0)
    learned = model.weighting.log_variance.numpy()
    assert np.abs(learned).max() > 1e-3
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.weighting, weighting.Uncertainty)
    np.testing.assert_allclose(loaded.weighting.log_variance.numpy(), learned)
    pcgrad = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")])
    pcgrad.compile(optimizer="sgd", weighting=weighting.CAGrad(c=0.2, mode="representation"))
    pcgrad.save(tmp_path / "p.keras")
    again = keras.saving.load_model(tmp_path / "p.keras").weighting
    assert (type(again), again.c, again.mode) == (weighting.CAGrad, 0.2, "representation")


def test_random_task_order_is_a_uniform_permutation_in_a_graph():
    from keras_mtl.weighting.base import _random_order

    draw = tf.function(lambda s: _random_order(3, tf.stack([s, tf.constant(7, tf.int64)])))
    orders = [tuple(draw(tf.constant(s, tf.int64)).numpy()) for s in range(600)]
    counts = {o: orders.count(o) for o in set(orders)}
    assert set(counts) == {(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)}
    assert min(counts.values()) > 60  # expected 100 each
    np.testing.assert_array_equal(_random_order(2, tf.constant([0, 0], tf.int64)), [0, 1])
