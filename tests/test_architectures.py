"""Sharing architectures: MMoE, CGC, PLE, cross-stitch, soft sharing, and their layers."""

import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_distributed import GLOBAL_BATCH, uneven_data

import keras_mtl as mtl
from keras_mtl import config, layers, tasks, training, trunks
from keras_mtl.models import cgc, cross_stitch, mmoe, ple, soft_sharing

FACTORIES = {
    "mmoe": lambda x, ts, **kw: mmoe(x, ts, trunks.mlp([8]), num_experts=3, expert_units=[6], **kw),
    "cgc": lambda x, ts, **kw: cgc(x, ts, trunks.mlp([8]), num_experts=2, num_task_experts=1, expert_units=[6], **kw),
    "ple": lambda x, ts, **kw: ple(x, ts, trunks.mlp([8]), num_levels=2, num_experts=2, num_task_experts=1, expert_units=[6], **kw),
    "cross_stitch": lambda x, ts, **kw: cross_stitch(x, ts, trunks.mlp([8]), column_units=[6, 4], **kw),
    "soft_sharing": lambda x, ts, **kw: soft_sharing(x, ts, trunks.mlp([8]), column_units=[6, 4], penalty=0.01, **kw),
}


def three_tasks():
    return [tasks.Binary("a"), tasks.Regression("b"), tasks.Multiclass("c", num_classes=3)]


def toy(rng, n=64, features=4):
    x = rng.normal(size=(n, features)).astype("float32")
    return x, {
        "a": (x[:, 0] > 0).astype("float32"),
        "b": x[:, 1].astype("float32"),
        "c": np.clip((np.abs(x[:, 2]) * 2).astype("int64"), 0, 2),
    }


# ----------------------------------------------------------------- factories
@pytest.mark.parametrize("arch", FACTORIES)
def test_outputs_named_after_tasks(arch):
    model = FACTORIES[arch](keras.Input((4,)), three_tasks())
    assert isinstance(model, mtl.MultiTaskModel) and model.name == arch
    assert {k: v.shape for k, v in model.output.items()} == {"a": (None, 1), "b": (None, 1), "c": (None, 3)}
    assert model.get_layer(model.representation) is not None
    assert model.shared_layers[0] == "trunk_dense_0"
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Lambda)]
    assert mtl.models.get(arch) is getattr(mtl.models, arch)


def test_shared_layers_follow_the_graph():
    x = keras.Input((4,))
    assert FACTORIES["mmoe"](x, three_tasks()).shared_layers == ["trunk_dense_0", "shared_experts"]
    assert FACTORIES["cgc"](x, three_tasks()).shared_layers == ["trunk_dense_0", "shared_experts"]
    # Soft sharing shares nothing but the trunk; cross-stitch units tie every column to every task.
    assert FACTORIES["soft_sharing"](x, three_tasks()).shared_layers == ["trunk_dense_0"]
    stitched = FACTORIES["cross_stitch"](x, three_tasks()).shared_layers
    assert {"cross_stitch_0", "cross_stitch_1", "a_column_0", "c_column_1"} <= set(stitched)
    rep = FACTORIES["mmoe"](x, three_tasks())
    assert rep.get_layer(rep.representation).output.shape == (None, 3, 6)


def test_ple_with_one_level_is_cgc():
    def structure(model):
        return [
            (type(layer).__name__, layer.name, [tuple(w.shape) for w in layer.weights])
            for layer in model.layers
        ]

    kwargs = dict(num_experts=2, num_task_experts=1, expert_units=[6], tower=[5])
    one = ple(keras.Input((4,), name="x"), three_tasks(), trunks.mlp([8]), num_levels=1, **kwargs)
    two = cgc(keras.Input((4,), name="x"), three_tasks(), trunks.mlp([8]), **kwargs)
    assert structure(one) == structure(two)
    assert one.shared_layers == two.shared_layers and one.representation == two.representation
    assert "a_moe_tower_0" in {layer.name for layer in one.layers}


def test_ple_levels_and_shared_gates():
    model = ple(keras.Input((4,)), three_tasks(), trunks.mlp([8]), num_levels=3, num_experts=2, num_task_experts=1, expert_units=[4])
    names = {layer.name for layer in model.layers}
    assert {"shared_gate_0", "shared_gate_1", "a_gate_2", "c_experts_2", "shared_experts_2"} <= names
    assert "shared_gate_2" not in names  # the last level feeds only the tasks
    assert model.get_layer("shared_gate_0").num_experts == 2 + 3 * 1
    assert model.get_layer("b_gate_1").num_experts == 2 + 1


def test_mmoe_is_cgc_without_task_experts():
    def structure(model):
        return [
            (type(layer).__name__, layer.name, [(w.path, tuple(w.shape)) for w in layer.weights])
            for layer in model.layers
        ]

    kwargs = dict(num_experts=3, expert_units=[6], tower=[5])
    a = mmoe(keras.Input((4,), name="x"), three_tasks(), trunks.mlp([8]), name="m", **kwargs)
    b = cgc(keras.Input((4,), name="x"), three_tasks(), trunks.mlp([8]), num_task_experts=0, name="m", **kwargs)
    assert structure(a) == structure(b)
    assert a.shared_layers == b.shared_layers and a.representation == b.representation
    b.set_weights(a.get_weights())
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    out_a, out_b = a.predict(x, verbose=0), b.predict(x, verbose=0)
    for task in out_a:
        np.testing.assert_array_equal(out_a[task], out_b[task])


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda x: mmoe(x, three_tasks(), num_experts=0), r"mmoe: num_experts must be an integer >= 1, got 0"),
        (lambda x: mmoe(x, three_tasks(), expert_units=[]), r"mmoe: expert_units must be a non-empty list"),
        (lambda x: mmoe(x, three_tasks(), tower=[4, 0]), r"mmoe: tower\[1\] must be an integer >= 1"),
        (lambda x: cgc(x, three_tasks(), num_task_experts=-1), r"cgc: num_task_experts must be an integer >= 0"),
        (lambda x: ple(x, three_tasks(), num_levels=0), r"ple: num_levels must be an integer >= 1, got 0"),
        (lambda x: ple(x, three_tasks(), num_experts=1.5), r"ple: num_experts must be an integer >= 1, got 1.5"),
        (lambda x: soft_sharing(x, three_tasks(), penalty=-1.0), r"soft_sharing: penalty must be a finite number >= 0, got -1.0"),
        (lambda x: soft_sharing(x, three_tasks(), penalty=float("nan")), r"soft_sharing: penalty must be a finite"),
        (lambda x: soft_sharing(x, [tasks.Binary("a")]), r"soft_sharing ties the columns of two or more tasks"),
        (lambda x: cross_stitch(x, three_tasks(), self_weight=1.5), r"cross_stitch: self_weight must be a number in \[0, 1\]"),
        (lambda x: cross_stitch(x, three_tasks(), column_units=[4, -2]), r"cross_stitch: column_units\[1\] must be"),
        (lambda x: cross_stitch(x, [tasks.Binary("a")]), r"cross_stitch mixes the columns of two or more tasks"),
        (lambda x: mmoe(x, [tasks.Binary("shared"), tasks.Binary("b")]), r"mmoe: a task may not be called 'shared'"),
    ],
)
def test_bad_hyperparameters_name_the_argument(build, message):
    with pytest.raises(ValueError, match=message):
        build(keras.Input((4,)))


# -------------------------------------------------------------------- layers
def test_gate_weights_are_a_distribution(rng):
    gate = layers.Gate(5)
    w = keras.ops.convert_to_numpy(gate(rng.normal(size=(32, 7)).astype("float32") * 10))
    assert w.shape == (32, 5) and np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=-1), np.ones(32), atol=1e-6)
    kernel, bias = gate.get_weights()
    x = rng.normal(size=(4, 7)).astype("float32")
    logits = x @ kernel + bias
    want = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gate(x)), want / want.sum(-1, keepdims=True), rtol=1e-5)


def test_gate_statistics_only_move_in_training(rng):
    gate = layers.Gate(3, name="g")
    x = rng.normal(size=(8, 4)).astype("float32")
    gate(x, training=False)
    assert float(gate.tracker.count) == 0.0
    w = keras.ops.convert_to_numpy(gate(x, training=True))
    stats = {k: float(v) for k, v in gate.tracker.result().items()}
    np.testing.assert_allclose([stats[f"g/expert_{i}"] for i in range(3)], w.mean(0), rtol=1e-5)
    assert stats["g/entropy"] == pytest.approx(float(np.mean(-(w * np.log(w)).sum(-1))), rel=1e-5)
    assert gate.training_log_names == ["g/expert_0", "g/expert_1", "g/expert_2", "g/entropy"]
    assert layers.Gate(3, statistics=False).training_log_names == []


def test_experts_are_independent_dense_stacks(rng):
    experts = layers.Experts(3, [4, 2])
    x = rng.normal(size=(5, 6)).astype("float32")
    out = keras.ops.convert_to_numpy(experts(x))
    k0, b0, k1, b1 = experts.get_weights()
    for e in range(3):
        h = np.maximum(x @ k0[e] + b0[e], 0)
        np.testing.assert_allclose(out[:, e], np.maximum(h @ k1[e] + b1[e], 0), rtol=1e-5, atol=1e-6)
    # Each expert is initialised like a Dense layer of its own size (Glorot uniform).
    assert np.abs(k0).max() <= np.sqrt(6 / (6 + 4))


def test_mix_experts_is_the_gate_weighted_sum(rng):
    w = rng.dirichlet(np.ones(5), size=4).astype("float32")
    shared, own = rng.normal(size=(4, 3, 2)).astype("float32"), rng.normal(size=(4, 2, 2)).astype("float32")
    out = keras.ops.convert_to_numpy(layers.MixExperts()(w, [shared, own]))
    np.testing.assert_allclose(out, np.einsum("be,bed->bd", w, np.concatenate([shared, own], 1)), rtol=1e-5)
    with pytest.raises(ValueError, match="gives 4 weights for 5 experts"):
        layers.MixExperts()(w[:, :4], [shared, own])


def test_cross_stitch_initial_alpha():
    unit = layers.CrossStitch(0.8)
    unit([keras.ops.ones((1, 2))] * 3)
    want = np.full((3, 3), 0.1)
    np.fill_diagonal(want, 0.8)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(unit.alpha), want, rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        layers.CrossStitch()([keras.ops.ones((1, 2)), keras.ops.ones((1, 3))])


def test_cross_stitch_with_identity_alpha_is_independent_columns(rng):
    # Columns start on the raw inputs (mlp([]) has no layers) and alpha = I:
    # each task's output must be its own column and head, computed by hand.
    model = cross_stitch(
        keras.Input((3,)), [tasks.Binary("a"), tasks.Regression("b", normalize=False)], trunks.mlp([]), column_units=[4, 2]
    )
    for unit in ("cross_stitch_0", "cross_stitch_1"):
        model.get_layer(unit).alpha.assign(np.eye(2, dtype="float32"))
    x = rng.normal(size=(6, 3)).astype("float32")
    got = model.predict(x, verbose=0)

    def dense(name, h, activation=lambda v: np.maximum(v, 0)):
        kernel, bias = model.get_layer(name).get_weights()
        return activation(h @ kernel + bias)

    for task, act in (("a", lambda v: 1 / (1 + np.exp(-v))), ("b", lambda v: v)):
        h = dense(f"{task}_column_1", dense(f"{task}_column_0", x))
        np.testing.assert_allclose(got[task], dense(task, h, act), rtol=1e-5, atol=1e-6)
    # And with the default alpha the columns really are mixed.
    fresh = cross_stitch(keras.Input((3,)), [tasks.Binary("a"), tasks.Regression("b")], trunks.mlp([]), column_units=[4, 2])
    ha0 = np.maximum(x @ fresh.get_layer("a_column_0").get_weights()[0] + fresh.get_layer("a_column_0").get_weights()[1], 0)
    hb0 = np.maximum(x @ fresh.get_layer("b_column_0").get_weights()[0] + fresh.get_layer("b_column_0").get_weights()[1], 0)
    mid = keras.Model(fresh.input, fresh.get_layer("cross_stitch_0").output)
    mixed_a, _ = mid.predict(x, verbose=0)
    np.testing.assert_allclose(mixed_a, 0.9 * ha0 + 0.1 * hb0, rtol=1e-5, atol=1e-6)


def numpy_penalty(model, task_names, levels, lam):
    total = 0.0
    for level in range(levels):
        weights = [model.get_layer(f"{t}_column_{level}").get_weights() for t in task_names]
        for i in range(len(weights)):
            for j in range(i + 1, len(weights)):
                total += sum(np.sum((u.astype("float64") - v) ** 2) for u, v in zip(weights[i], weights[j]))
    return lam * total


@pytest.mark.slow
def test_soft_sharing_penalty_equals_numpy(rng):
    x, y = toy(rng, 32)
    model = soft_sharing(keras.Input((4,)), three_tasks(), trunks.mlp([8]), column_units=[6, 4], penalty=0.05)
    want = numpy_penalty(model, "abc", 2, 0.05)
    assert want > 0
    layer = model.get_layer("soft_sharing_penalty")
    assert float(layer.value()) == pytest.approx(want, rel=1e-5)
    model(x, training=False)
    assert len(model.losses) == 1 and float(model.losses[0]) == pytest.approx(want, rel=1e-5)

    # The training loss is the task losses plus the penalty, and fit logs its value.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["a_loss"] + logs["b_loss"] + logs["c_loss"] + want, rel=1e-5)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert history["soft_sharing_penalty"][0] == pytest.approx(want, rel=1e-5)
    assert layers.training_only_log_names(model) == {"soft_sharing_penalty"}


@pytest.mark.slow
def test_soft_sharing_penalty_pulls_columns_together(rng):
    x, y = toy(rng, 64)

    def distance(lam):
        keras.utils.set_random_seed(3)
        model = soft_sharing(keras.Input((4,)), three_tasks(), trunks.mlp([8]), column_units=[6], penalty=lam)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        model.fit(x, y, batch_size=16, epochs=3, verbose=0)
        return numpy_penalty(model, "abc", 1, 1.0)

    assert distance(1.0) < 0.5 * distance(0.0)


def test_soft_sharing_layer_errors():
    x = keras.Input((3,))
    tie = layers.SoftSharingPenalty(0.1, num_columns=2)
    with pytest.raises(ValueError, match=r"index must be an integer in \[0, 2\)"):
        tie([keras.layers.Dense(2)(x)], index=2)
    with pytest.raises(ValueError, match="symbolic outputs of the columns' layers"):
        tie([x], index=0)
    with pytest.raises(ValueError, match="num_columns must be an integer >= 2"):
        layers.SoftSharingPenalty(0.1, num_columns=1)
    a = tie([keras.layers.Dense(2)(x)], index=0)
    with pytest.raises(ValueError, match=r"never called with index \[1\]"):
        keras.Model(x, a)(np.ones((1, 3), "float32"))
    b = tie([keras.layers.Dense(3)(x)], index=1)
    with pytest.raises(ValueError, match="different shapes"):
        keras.Model(x, [a, b])(np.ones((1, 3), "float32"))


# ------------------------------------------------------------ logs, metrics
@pytest.mark.slow
def test_gate_metrics_in_fit_history_and_tensorboard(rng, tmp_path):
    x, y = toy(rng)
    model = FACTORIES["mmoe"](keras.Input((4,)), three_tasks())
    model.compile(optimizer="adam")
    history = model.fit(
        x, y, batch_size=16, epochs=2, verbose=0, callbacks=[keras.callbacks.TensorBoard(str(tmp_path))]
    ).history
    for task in "abc":
        means = [history[f"{task}_gate/expert_{i}"][-1] for i in range(3)]
        assert sum(means) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 < history[f"{task}_gate/entropy"][-1] <= np.log(3) + 1e-6
    assert "a_gate/expert_3" not in history
    events = EventAccumulator(str(tmp_path / "train"))
    events.Reload()
    assert {"epoch_a_gate/expert_0", "epoch_c_gate/entropy"} <= set(events.Tags()["tensors"])
    assert layers.training_only_log_names(model) == {
        f"{t}_gate/{k}" for t in "abc" for k in ("expert_0", "expert_1", "expert_2", "entropy")
    }


@pytest.mark.slow
def test_ple_gate_metric_names_and_switch(rng):
    x, y = toy(rng, 32)
    model = FACTORIES["ple"](keras.Input((4,)), three_tasks())
    model.compile(optimizer="adam")
    history = model.fit(x, y, batch_size=16, verbose=0).history
    assert {"a_gate_0/expert_2", "a_gate_1/entropy", "shared_gate_0/expert_4", "shared_gate_0/entropy"} <= set(history)
    quiet = FACTORIES["cgc"](keras.Input((4,)), three_tasks(), gate_metrics=False)
    quiet.compile(optimizer="adam")
    assert not [k for k in quiet.fit(x, y, batch_size=16, verbose=0).history if "gate" in k]


# ------------------------------------------------------------- round trips
@pytest.mark.slow
@pytest.mark.parametrize("arch", FACTORIES)
def test_keras_round_trip(arch, rng, tmp_path):
    x, y = toy(rng, 32)
    model = FACTORIES[arch](keras.Input((4,), name="x"), three_tasks())
    model.compile(optimizer="adam")
    model.fit(x, y, batch_size=16, verbose=0)
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode stays on
    assert isinstance(loaded, mtl.MultiTaskModel)
    assert loaded.shared_layers == model.shared_layers and loaded.representation == model.representation
    want, got = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for name in want:
        np.testing.assert_array_equal(want[name], got[name])
    with zipfile.ZipFile(path) as z:
        assert "Lambda" not in z.read("config.json").decode()
    history = loaded.fit(x, y, batch_size=16, verbose=0).history  # trains on, logs intact
    assert set(history) == set(model.fit(x, y, batch_size=16, verbose=0).history)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mmoe", "cross_stitch", "soft_sharing"])
def test_serving_export(arch, rng, tmp_path):
    x, _ = toy(rng, 16)
    model = FACTORIES[arch](keras.Input((4,), name="x"), three_tasks())
    path = mtl.export.export_saved_model(model, tmp_path / arch)
    report = mtl.export.verify(path, {"x": x}, model)
    assert report["max_abs_diff"] < 1e-5


# ------------------------------------------------------------------- trunks
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mmoe", "ple", "cross_stitch", "soft_sharing"])
def test_text_trunk_pooled_features(arch):
    words = np.array(["the", "cat", "dog", "sat", "ran", "on", "mat"])
    rng = np.random.default_rng(0)
    texts = np.array([" ".join(rng.choice(words, size=4)) for _ in range(32)])
    vec = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vec.adapt(texts)
    trunk = trunks.text(vec, units=8, num_layers=1)
    ts = [tasks.Binary("cat"), tasks.Multiclass("topic", num_classes=3)]
    build = {"mmoe": mmoe, "ple": ple, "cross_stitch": cross_stitch, "soft_sharing": soft_sharing}[arch]
    model = build(keras.Input((), dtype="string", name="text"), ts, trunk)
    assert model.shared_layers[:1] == ["trunk_embedding"]
    model.compile(optimizer="adam")
    y = {"cat": np.char.find(texts, "cat").astype("float32") >= 0, "topic": rng.integers(0, 3, 32)}
    y["cat"] = y["cat"].astype("float32")
    model.fit(tf.constant(texts), y, batch_size=16, verbose=0)
    assert model.predict(tf.constant(texts[:2]), verbose=0)["topic"].shape == (2, 3)
    with pytest.raises(ValueError, match=rf"{arch}: task 'ner' \(Tagging\) needs per-token features"):
        build(keras.Input((), dtype="string"), ts + [tasks.Tagging("ner", num_tags=3)], trunk)


@pytest.mark.slow
def test_tabular_trunk_through_the_run_config(census_small, rng):
    # keras-mtl train's path: config keys -> factory arguments -> tabular trunk.
    cfg = config.from_dict(config.Config, {
        "name": "t",
        "model": {"architecture": "ple", "trunk": {"units": [8]}, "num_experts": 2, "num_task_experts": 1, "expert_units": [4]},
    })
    model = training.build_model(cfg, census_small, list(census_small.tasks))
    assert model.name == "ple" and model.get_layer("shared_gate_0").num_experts == 2 + 2 * 1
    history = model.fit(census_small.train.take(2), verbose=0).history
    assert "income_gate_1/entropy" in history
    renamed = [tasks.Binary("shared", label="income"), tasks.Binary("never_married")]
    with pytest.raises(config.ConfigError, match="model.architecture ple: ple: a task may not be called 'shared'"):
        training.build_model(cfg, census_small, renamed)


@pytest.mark.slow
def test_image_trunk(rng):
    images = rng.integers(0, 255, size=(16, 8, 8, 1)).astype("float32")
    labels = {"a": (images.mean((1, 2, 3)) > 127).astype("float32"), "b": images.std((1, 2, 3))}
    cnn = mtl.models.cgc(keras.Input((8, 8, 1)), [tasks.Binary("a"), tasks.Regression("b")], trunks.image([4], units=8), expert_units=[4])
    cnn.compile(optimizer="adam")
    cnn.fit(images, labels, batch_size=8, verbose=0)
    assert cnn.predict(images[:3], verbose=0)["b"].shape == (3, 1)


# -------------------------------------------------------- tf.distribute
def train_under(strategy, arch, x, y, initial):
    with strategy.scope():
        model = FACTORIES[arch](
            keras.Input((5,)),
            [tasks.Binary("a", weight=1.5), tasks.Regression("b", weight=0.5), tasks.Multiclass("c", num_classes=3)],
        )
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    history = model.fit(ds, epochs=2, verbose=0).history
    return model.get_weights(), history


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mmoe", "cross_stitch", "soft_sharing"])
def test_mirrored_two_devices_equal_one_device(arch, rng):
    assert len(tf.config.list_logical_devices("CPU")) >= 2, "conftest sets up two logical CPU devices"
    x, y = uneven_data(rng)
    initial = FACTORIES[arch](keras.Input((5,)), three_tasks()).get_weights()
    one, h1 = train_under(tf.distribute.OneDeviceStrategy("/cpu:0"), arch, x, y, initial)
    # Every MirroredStrategy in a process starts its collective keys at the
    # same value, and the collective executor remembers tensor shapes per
    # key: models of different sizes in one process then abort with "Shape
    # mismatch in the collective instance". Reducing through one device
    # launches no collectives, so these tests leave none behind.
    mirrored = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    two, h2 = train_under(mirrored, arch, x, y, initial)
    assert max(np.abs(w - w0).max() for w, w0 in zip(one, initial)) > 1e-3
    for w1, w2 in zip(one, two):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    # Every log, gate statistics and the penalty included, agrees too.
    assert set(h1) == set(h2)
    for key in h1:
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5, atol=1e-6, err_msg=key)
