"""LazyAdam: Adam on dense gradients, and on embedding lookups only the rows the batch used."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_distributed import strategies

import keras_mtl as mtl
from keras_mtl import _encoding as encoding, saving
from keras_mtl.optimizers import LazyAdam, sum_duplicates
from keras_mtl.preprocessing import FeatureSpace as FS

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-7


def adam_rows(g, m, v, w, t, lr=LR, b1=B1, b2=B2, eps=EPS):
    """One Adam step by hand, in float64, in Keras' form (epsilon-hat, bias correction in alpha)."""
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return m, v, w - m * alpha / (np.sqrt(v) + eps)


def lookup_gradient(table, ids, upstream):
    """The gradient of `sum(Embedding(ids) * upstream)`: a `tf.IndexedSlices` with values `upstream`."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(table(tf.convert_to_tensor(ids)) * tf.cast(upstream, "float32"))
    (grad,) = tape.gradient(loss, table.trainable_variables)
    assert isinstance(grad, tf.IndexedSlices)
    return grad


def moments(opt, variable):
    i = opt._get_variable_index(variable)
    return opt._momentums[i].numpy(), opt._velocities[i].numpy()


# --------------------------------------------------------------- dense
@pytest.mark.parametrize("amsgrad", [False, True])
def test_dense_variables_update_exactly_like_adam(amsgrad):
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    runs = []
    for make in (keras.optimizers.Adam, LazyAdam):
        opt = make(learning_rate=0.05, amsgrad=amsgrad)
        variables = [keras.Variable(s) for s in start]
        grads = np.random.default_rng(1)
        for _ in range(5):
            opt.apply_gradients([(tf.constant(grads.normal(size=s.shape), "float32"), v)
                                 for s, v in zip(start, variables)])
        runs.append([v.numpy() for v in variables] + [w.numpy() for w in opt.variables])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ embedding
@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["eager", "xla"])
def test_only_the_rows_of_the_batch_move_and_repeated_ids_are_summed(compiled):
    table = keras.layers.Embedding(8, 2, embeddings_initializer=keras.initializers.RandomNormal(seed=3))
    table.build((None,))
    w0 = table.embeddings.numpy().astype("float64")
    opt = LazyAdam(learning_rate=LR)
    opt.build(table.trainable_variables)

    def step(ids, upstream):
        grad = lookup_gradient(table, ids, upstream)
        opt.apply_gradients([(grad, table.embeddings)])

    if compiled:
        step = tf.function(step, jit_compile=True, reduce_retracing=True)

    # Step 1: id 2 twice (its gradient is the sum), id 5 once.
    g = np.array([[1.0, -2.0], [0.5, 0.25], [3.0, 1.0]])
    step([2, 2, 5], g)
    w1, (m1, v1) = table.embeddings.numpy(), moments(opt, table.embeddings)
    zeros = np.zeros(2)
    exp = {2: adam_rows(g[0] + g[1], zeros, zeros, w0[2], t=1), 5: adam_rows(g[2], zeros, zeros, w0[5], t=1)}
    for row, (m, v, w) in exp.items():
        np.testing.assert_allclose(m1[row], m, rtol=1e-6)
        np.testing.assert_allclose(v1[row], v, rtol=1e-6)
        # float32's 1 - 0.999 is off by 1e-5 relative: updates of ~lr agree to ~1e-6.
        np.testing.assert_allclose(w1[row], w, rtol=0, atol=2e-6)
    others = [0, 1, 3, 4, 6, 7]
    np.testing.assert_array_equal(w1[others], w0[others].astype("float32"))
    assert not m1[others].any() and not v1[others].any()

    # Row 2's update is dense Adam's for the summed (dense) gradient, bit for bit.
    dense = keras.Variable(w0.astype("float32"))
    adam = keras.optimizers.Adam(learning_rate=LR)
    dense_grad = np.zeros((8, 2), "float32")
    np.add.at(dense_grad, [2, 2, 5], g.astype("float32"))
    adam.apply_gradients([(tf.constant(dense_grad), dense)])
    np.testing.assert_array_equal(w1, dense.numpy())  # after one step from zero moments, everywhere

    # Step 2 touches only row 5: row 2 and its moments stay as they were
    # (dense Adam would keep moving row 2 by momentum).
    g2 = np.array([[-1.0, 0.5]])
    step([5], g2)
    w2, (m2, v2) = table.embeddings.numpy(), moments(opt, table.embeddings)
    np.testing.assert_array_equal(w2[2], w1[2])
    np.testing.assert_array_equal(m2[2], m1[2])
    np.testing.assert_array_equal(v2[2], v1[2])
    m, v, w = adam_rows(g2[0], m1[5].astype("float64"), v1[5].astype("float64"), w1[5].astype("float64"), t=2)
    np.testing.assert_allclose(m2[5], m, rtol=1e-6)
    np.testing.assert_allclose(v2[5], v, rtol=1e-6)
    np.testing.assert_allclose(w2[5], w, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(w2[others], w0[others].astype("float32"))
    assert int(opt.iterations.numpy()) == 2

    dense_grad = np.zeros((8, 2), "float32")
    dense_grad[5] = g2[0]
    adam.apply_gradients([(tf.constant(dense_grad), dense)])
    moved = m1[2] * LR * np.sqrt(1 - B2**2) / (1 - B1**2) / (np.sqrt(v1[2] * B2) + EPS)
    np.testing.assert_allclose(dense.numpy()[2], w1[2] - moved * B1, rtol=1e-5)  # the lazy difference
    assert np.abs(dense.numpy()[2] - w1[2]).min() > 1e-3


def test_amsgrad_keeps_the_running_maximum_for_the_touched_rows():
    table = keras.layers.Embedding(4, 1, embeddings_initializer="ones")
    table.build((None,))
    opt = LazyAdam(learning_rate=LR, amsgrad=True)
    steps = [([1, 3], [[10.0], [1.0]]), ([1], [[0.1]]), ([1, 3], [[0.1], [0.2]])]
    m, v, v_hat, w = np.zeros(4), np.zeros(4), np.zeros(4), np.ones(4)
    for t, (ids, upstream) in enumerate(steps, start=1):
        opt.apply_gradients([(lookup_gradient(table, ids, upstream), table.embeddings)])
        for row, g in zip(ids, np.ravel(upstream)):
            m[row] = m[row] + (g - m[row]) * (1 - B1)
            v[row] = v[row] + (g * g - v[row]) * (1 - B2)
            v_hat[row] = max(v_hat[row], v[row])
            w[row] = w[row] - m[row] * LR * np.sqrt(1 - B2**t) / (1 - B1**t) / (np.sqrt(v_hat[row]) + EPS)
    np.testing.assert_allclose(opt._velocity_hats[0].numpy().ravel(), v_hat, rtol=1e-6)
    assert v_hat[1] > v[1]  # the maximum, not the current second moment, is in use
    np.testing.assert_allclose(table.embeddings.numpy().ravel(), w, rtol=0, atol=5e-6)
    assert table.embeddings.numpy()[[0, 2]].ravel().tolist() == [1.0, 1.0]


def test_weight_decay_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"LazyAdam does not support weight_decay \(got 0\.01\).*AdamW") as error:
        LazyAdam(weight_decay=0.01)
    assert "\n" not in str(error.value)


def test_sum_duplicates_keeps_the_dense_value():
    g = tf.IndexedSlices(tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]),
                         tf.constant([4, 1, 4, 4]), tf.constant([6, 2]))
    s = sum_duplicates(g)
    np.testing.assert_array_equal(tf.convert_to_tensor(s), tf.convert_to_tensor(g))
    assert s.indices.numpy().tolist() == [1, 4, 4, 4]
    np.testing.assert_array_equal(s.values, [[3.0, 4.0], [13.0, 16.0], [0.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize(
    "options", [{"clipnorm": 5.0}, {"global_clipnorm": 5.0}, {"clipvalue": 2.5}, {"loss_scale_factor": 4.0}],
    ids=lambda o: next(iter(o)),
)
def test_clipping_and_loss_scale_act_on_the_dense_gradient(options):
    """One step from zero moments moves no untouched row under dense Adam either, so the two agree."""
    table = keras.layers.Embedding(6, 2, embeddings_initializer=keras.initializers.RandomNormal(seed=1))
    table.build((None,))
    bias = keras.Variable(np.zeros(2, "float32"))
    # Row 1 twice: its dense gradient [6, 8] has another norm than the two slices [3, 4].
    grad = lookup_gradient(table, [1, 1, 3], [[3.0, 4.0], [3.0, 4.0], [1.0, 0.0]])
    bias_grad = tf.constant([2.0, -3.0])
    if "loss_scale_factor" in options:
        grad = tf.IndexedSlices(grad.values * 4.0, grad.indices, grad.dense_shape)
        bias_grad = bias_grad * 4.0
    start = table.embeddings.numpy()
    dense_table, dense_bias = keras.Variable(start), keras.Variable(np.zeros(2, "float32"))
    LazyAdam(learning_rate=LR, **options).apply_gradients([(grad, table.embeddings), (bias_grad, bias)])
    keras.optimizers.Adam(learning_rate=LR, **options).apply_gradients(
        [(tf.convert_to_tensor(grad), dense_table), (bias_grad, dense_bias)]
    )
    np.testing.assert_allclose(table.embeddings.numpy(), dense_table.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bias.numpy(), dense_bias.numpy(), rtol=1e-6, atol=1e-7)
    assert (table.embeddings.numpy() != start).any()


# -------------------------------------------------------------- config
@pytest.mark.slow
def test_config_round_trip_and_keras_file(tmp_path):
    opt = LazyAdam(learning_rate=0.02, beta_1=0.8, amsgrad=True, clipnorm=1.0, name="lazy")
    config = opt.get_config()
    again = LazyAdam.from_config(config)
    assert again.get_config() == config and type(again) is LazyAdam
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is LazyAdam and restored.get_config() == config

    features, labels = id_table()
    fs, cols = space(features)
    model = model_on(fs)
    model.compile(optimizer=LazyAdam(0.01, beta_2=0.99))
    model.fit(mtl.data.from_columns(cols, {"y": labels}, batch_size=32), verbose=0)
    loaded = saving.load_model(saving.save_model(model, tmp_path / "model.keras"))
    assert type(loaded.optimizer) is LazyAdam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_training_config_names_lazy_adam():
    from keras_mtl.config import TrainConfig

    assert type(mtl.optimizers.get("lazy_adam", learning_rate=0.1)) is LazyAdam
    assert TrainConfig(optimizer="lazy_adam").optimizer == "lazy_adam"


# --------------------------------------------------------------- models
def id_table(n=256, seed=0):
    """Features with a hashed id column that alone predicts the label."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 40, n)
    features = {
        "x": rng.normal(size=(n, 1)).astype("float32"),
        "user": np.array([f"user{i}" for i in ids], dtype=object)[:, None],
    }
    return features, (ids % 2).astype("float32")


def space(features, num_bins=1000):
    fs = FS({"x": "float_normalized", "user": FS.hashed(num_bins, embedding_dim=4, name="user")}, output_mode="dict")
    fs.adapt(features)
    return fs, features


class Recording(LazyAdam):
    """LazyAdam that notes, while tracing, which gradients reach `update_step` as slices."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sliced = set()

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            self.sliced.add(variable.name.split("/replica_")[0].split(":")[0])
        return super().update_step(gradient, variable, learning_rate)


def model_on(fs):
    return mtl.models.shared_bottom(fs.get_inputs(), [mtl.tasks.Binary("y")], trunk=mtl.trunks.tabular(fs, [8]))


@pytest.mark.slow
def test_fit_with_and_without_xla_gives_the_same_weights_and_untouched_rows_stay():
    features, labels = id_table()
    fs, cols = space(features)
    reference = model_on(fs)
    initial = reference.get_weights()
    encoded = encoding.encode_columns(reference.preprocessing.encoder, cols)
    used = np.unique(encoded["user_preprocessor"])
    runs = []
    for jit in (False, True):
        model = model_on(fs)
        model.set_weights(initial)
        model.compile(optimizer=Recording(0.02), jit_compile=jit)
        history = model.fit(mtl.data.from_columns(encoded, {"y": labels}, batch_size=32), epochs=3, verbose=0)
        assert model.jit_compile is jit
        assert model.optimizer.sliced == {"user_embedding/embeddings"}  # not densified on the way
        embeddings = model.get_layer("user_embedding").embeddings
        unused = np.setdiff1d(np.arange(embeddings.shape[0]), used)
        np.testing.assert_array_equal(embeddings.numpy()[unused], initial[model.weights.index(embeddings)][unused])
        m, v = moments(model.optimizer, embeddings)
        assert not m[unused].any() and not v[unused].any()
        assert np.abs(m[used]).sum(axis=1).min() > 0
        runs.append((model.get_weights(), history.history))
    (eager, h1), (xla, h2) = runs
    for a, b in zip(eager, xla):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-5)
    assert h1["loss"][-1] < h1["loss"][0]


@pytest.mark.slow
def test_mirrored_two_devices_equal_one_device():
    features, labels = id_table(n=64)
    fs, cols = space(features)
    reference = model_on(fs)
    initial = reference.get_weights()
    # Encoded ids: no raw strings through a Mirrored fit (tensorflow/tensorflow#80951).
    encoded = encoding.encode_columns(reference.preprocessing.encoder, cols)
    ids = encoded["user_preprocessor"].ravel()
    assert len(np.unique(ids[:16])) < 16  # repeated ids within a global batch
    assert set(ids[:8]) & set(ids[8:16])  # and across the two replicas' halves
    runs = []
    for strategy in strategies():
        with strategy.scope():
            model = model_on(fs)
            model.set_weights(initial)
            model.compile(optimizer=Recording(0.01))
        history = model.fit(mtl.data.from_columns(encoded, {"y": labels}, batch_size=16), epochs=2, verbose=0)
        assert model.optimizer.sliced == {"user_embedding/embeddings"}
        runs.append((model.get_weights(), history.history))
    (one, h1), (two, h2) = runs
    assert max(np.abs(w - w0).max() for w, w0 in zip(one, initial)) > 1e-3
    for w1, w2 in zip(one, two):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-5)


def test_gradient_accumulation_is_dense_adam_on_the_accumulated_gradient():
    runs = []
    for make in (LazyAdam, keras.optimizers.Adam):
        variable = keras.Variable(np.ones((6, 2), "float32"))
        opt = make(learning_rate=LR, gradient_accumulation_steps=2)
        for ids in ([1, 1], [2], [1], [3]):
            grad = tf.IndexedSlices(tf.ones((len(ids), 2)), tf.constant(ids), tf.constant([6, 2]))
            opt.apply_gradients([(grad if make is LazyAdam else tf.convert_to_tensor(grad), variable)])
        runs.append(variable.numpy())
    np.testing.assert_array_equal(*runs)


@pytest.mark.slow
def test_mixed_float16_loss_scaling_keeps_the_update_lazy():
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        ids = keras.Input((1,), dtype="int32")
        table = keras.layers.Embedding(6, 2, embeddings_initializer="ones", name="table")
        model = keras.Model(ids, keras.layers.Dense(1, dtype="float32")(keras.layers.Flatten()(table(ids))))
        model.compile(optimizer=Recording(LR), loss="mse")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        model.fit(np.array([[1], [1], [4]]), np.zeros((3, 1)), batch_size=3, epochs=2, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.optimizer.inner_optimizer.sliced == {"table/embeddings"}
    rows = table.embeddings.numpy()
    assert (rows[[1, 4]] != 1.0).all() and (rows[[0, 2, 3, 5]] == 1.0).all()
