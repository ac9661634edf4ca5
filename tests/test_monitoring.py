"""Monitoring: gradient conflict, task affinity, per-task scalars, expert utilisation and the
report, read back from the event files."""

import base64
import html
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import keras_mtl as mtl
from keras_mtl import callbacks, diagnostics, _events as events


def same_head_model(names):
    """A linear shared layer and identical linear heads: task gradients on the
    shared layer then differ only through the targets (raw ones: per-task
    target stats would make the heads differ)."""
    x = keras.Input((3,), name="x")
    model = mtl.models.shared_bottom(
        x, [mtl.tasks.Regression(n, normalize=False) for n in names], trunk=mtl.trunks.mlp([4], activation="linear")
    )
    head = model.get_layer(names[0]).get_weights()
    for n in names[1:]:
        model.get_layer(n).set_weights(head)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    return model


def data(rng, n=64):
    x = rng.normal(size=(n, 3)).astype("float32")
    t = 5.0 * (x @ np.array([1.0, -2.0, 0.5], "float32"))
    return x, t


def test_opposite_tasks_conflict(rng):
    x, t = data(rng)
    model = same_head_model(["up", "down"])
    grads = diagnostics.task_gradients(model, x, {"up": t, "down": -t})
    cos = diagnostics.cosine_matrix(grads)
    assert cos[0, 1] < -0.5 and np.allclose(np.diag(cos), 1.0)


def test_affinity_signs(rng):
    x, t = data(rng)
    model = same_head_model(["a", "same", "opposite"])
    a = diagnostics.lookahead_affinity(model, x, {"a": t, "same": t, "opposite": -t}, learning_rate=0.01).numpy()
    assert a[0, 1] > 0  # a step on `a` helps the task with the same target
    assert a[0, 2] < 0  # and hurts the one with the opposite target
    assert a[0, 0] > 0
    # the variables are restored
    before = [w.copy() for w in model.get_weights()]
    diagnostics.lookahead_affinity(model, x, {"a": t, "same": t, "opposite": -t})
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    assert diagnostics.suggest_groups(a, ["a", "same", "opposite"], 2) == [["a", "same"], ["opposite"]]


def test_affinity_is_one_minus_the_loss_ratio_after_an_sgd_step_on_the_shared_weights(rng):
    """A[i, j] = 1 - L_j(w - lr * g_i) / L_j(w), with g_i task i's gradient on the shared
    weights only, computed here by writing the trial weights into the model and evaluating."""
    x, t = data(rng, 32)
    model = same_head_model(["a", "b"])
    y = {"a": t, "b": 0.5 * t + 1.0}
    lr = 0.003
    shared = model.shared_variables
    before = [v.numpy() for v in shared]
    heads = {n: model.get_layer(n).get_weights() for n in ("a", "b")}

    def losses():
        values, _ = model.task_losses(y, model(x, training=False))
        return np.array([float(values["a"]), float(values["b"])])

    grads = diagnostics.task_gradients(model, x, y).numpy()
    now = losses()
    expected = np.zeros((2, 2))
    for i in range(2):
        offset = 0
        for v, w in zip(shared, before):
            v.assign(w - lr * grads[i, offset:offset + w.size].reshape(w.shape))
            offset += w.size
        expected[i] = 1.0 - losses() / now
        for v, w in zip(shared, before):
            v.assign(w)
    assert offset == grads.shape[1]  # the gradient covers the shared weights, nothing else

    got = diagnostics.lookahead_affinity(model, x, y, learning_rate=lr).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert abs(expected).min() > 1e-4  # a step moves every loss: the comparison is not 0 == 0
    for v, w in zip(shared, before):  # the model's weights are never written
        np.testing.assert_array_equal(v.numpy(), w)
    for n, w in heads.items():
        for a, b in zip(model.get_layer(n).get_weights(), w):
            np.testing.assert_array_equal(a, b)


def test_probes_check_their_batch_labels_in_numpy_and_name_the_task(tmp_path, rng):
    x, t = data(rng)
    model = mtl.models.shared_bottom(
        keras.Input((3,), name="x"), [mtl.tasks.Regression("r"), mtl.tasks.Binary("flag")], trunk=mtl.trunks.mlp([4])
    )
    model.compile(optimizer="sgd")
    labels = {"r": t, "flag": (t > 0).astype("float32")}
    labels["flag"][5] = 3.0
    cb = callbacks.GradientConflict(str(tmp_path), (x, labels), every_n_steps=1)
    cb.set_model(model)
    with pytest.raises(ValueError, match=r"Task 'flag' \(label 'flag'\) in the probe batch: label 3.0 at row 5 is outside \[0, 1\]"):
        cb.check(1)
    with pytest.raises(ValueError, match=r"Task 'flag'.*in the probe batch"):
        diagnostics.lookahead_affinity(model, x, labels)
    labels["flag"][5] = -1.0  # the missing marker is fine
    assert cb.check(1).shape == (2, 2)


@pytest.mark.slow
def test_probes_due_at_the_same_step_share_one_probe_call(tmp_path, rng, monkeypatch):
    x, t = data(rng)
    model = same_head_model(["up", "down"])
    probe = (x[:16], {"up": t[:16], "down": -t[:16]})
    cbs = [callbacks.TaskAffinity(str(tmp_path), probe, every_n_steps=2),  # in `monitoring`'s order
           callbacks.GradientConflict(str(tmp_path), probe, every_n_steps=2)]
    traced = diagnostics.traced_probe(model)
    calls = []
    monkeypatch.setitem(diagnostics._PROBES, model, lambda *a: calls.append(1) or traced(*a))
    model.fit(x, {"up": t, "down": -t}, batch_size=16, epochs=1, verbose=0, callbacks=cbs)  # 4 steps
    # 2 checks each: one call per step; the conflict check reuses the affinity check's (lookahead included).
    assert len(calls) == 2
    assert cbs[0]._count == 2 and cbs[0].mean[0, 1] < 0  # opposite targets: a step on one hurts the other
    assert cbs[1]._checks == 2


def test_a_traced_probe_does_not_keep_its_model_alive(rng):
    import gc
    import weakref

    x, t = data(rng)
    model = same_head_model(["up", "down"])
    diagnostics.traced_probe(model)(x, {"up": t, "down": -t})
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_suggest_groups_errors():
    with pytest.raises(ValueError, match="num_groups must be between 1 and the number of tasks"):
        diagnostics.suggest_groups(np.zeros((2, 2)), ["a", "b"], 3)


@pytest.mark.slow
def test_callbacks_write_readable_events(tmp_path, rng):
    x, t = data(rng, 96)
    model = same_head_model(["up", "down"])
    y = {"up": t, "down": -t}
    cbs = callbacks.monitoring(str(tmp_path), probe=(x[:32], {k: v[:32] for k, v in y.items()}),
                               conflict_every=2, affinity_every=3)
    model.compile(optimizer=keras.optimizers.SGD(0.001), weighting="pcgrad")
    model.fit(x, y, batch_size=16, epochs=2, validation_data=(x, y), callbacks=cbs, verbose=0)

    acc = EventAccumulator(str(tmp_path / "mtl"), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"up/loss", "up/val_loss", "up/weight", "down/grad_norm", "conflict/share",
            "conflict/cosine/up__down", "affinity/up__to__down", "optimizer/learning_rate"} <= tags
    cosines = [tf.make_ndarray(e.tensor_proto) for e in acc.Tensors("conflict/cosine/up__down")]
    assert len(cosines) == 6 and all(-1 <= c <= 1 for c in cosines)
    assert all(c < 0 for c in cosines)  # the tasks are built to conflict
    images = acc.Tensors("conflict/cosine_matrix")
    assert images  # image summaries are stored as tensors of encoded PNG strings
    result = json.loads((tmp_path / "mtl" / "affinity.json").read_text())
    assert result["tasks"] == ["up", "down"] and result["measurements"] == 4
    assert result["affinity"][0][1] < 0
    assert result["groupings"]["2"] == [["up"], ["down"]]


def test_event_writer_rejects_what_is_not_one_uint8_image_and_names_the_tag(tmp_path):
    writer = events.EventWriter(str(tmp_path))
    with pytest.raises(ValueError, match=r"one image, got a batch of shape \(2, 4, 4, 3\) for 'a/m'"):
        writer.image("a/m", np.zeros((2, 4, 4, 3), np.uint8), step=0)
    with pytest.raises(ValueError, match=r"uint8 pixels for 'a/m', got shape \(4, 4, 3\) and dtype float32"):
        writer.image("a/m", np.zeros((4, 4, 3), np.float32), step=0)
    with pytest.raises(RuntimeError, match="No default writer for scalar 'x'"):
        events.ScalarSummaries().scalar("x", 1.0, step=0)
    writer.close()
    assert list(tmp_path.iterdir()) == []  # nothing written, no empty event file left behind


def test_bad_frequencies(tmp_path):
    with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
        callbacks.GradientConflict(str(tmp_path), probe=(np.ones((1, 3)), {}), every_n_steps=0)


@pytest.mark.slow
def test_report_renders_runs_with_images(tmp_path, rng):
    from keras_mtl.report import render_report

    x, t = data(rng, 64)
    y = {"up": t, "down": -t}
    run = tmp_path / "logs" / "demo" / "r1"
    model = same_head_model(["up", "down"])
    model.fit(x, y, batch_size=16, epochs=2, validation_data=(x, y), verbose=0,
              callbacks=callbacks.monitoring(str(run), probe=(x[:16], {k: v[:16] for k, v in y.items()}),
                                             conflict_every=2, affinity_every=2))
    (run / "test_metrics.json").write_text(json.dumps({"up_loss": 1.5, "down_loss": 2.0, "loss": 3.5}))
    path = render_report(tmp_path / "logs")
    page = open(path).read()
    assert page.count("<img") >= 4  # curves, conflict, affinity (+ weights)
    assert "data:image/png;base64," in page
    assert "Run demo/r1" in page and "<td>1.5000</td>" in page
    assert "Suggested task groupings" in page


def test_hparams_plugin_data(tmp_path):
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    from keras_mtl._hparams import flatten, log_hparams

    log_hparams(str(tmp_path), flatten({"model": {"architecture": "mmoe"}, "train": {"weighting": "pcgrad"}}),
                {"income_auc": 0.95}, "r1")
    acc = EventAccumulator(str(tmp_path / "hparams"), size_guidance={"tensors": 0})
    acc.Reload()
    plugin = acc.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    assert hparams_metadata.SESSION_START_INFO_TAG in plugin and hparams_metadata.EXPERIMENT_TAG in plugin
    info = hparams_metadata.parse_session_start_info_plugin_data(
        plugin[hparams_metadata.SESSION_START_INFO_TAG]
    )
    assert info.hparams["model.architecture"].string_value == "mmoe"
    assert "test/income_auc" in acc.Tags()["tensors"]



@pytest.mark.slow
def test_probes_run_on_features_encoded_once(tmp_path, census_small):
    model = mtl.models.shared_bottom(census_small.inputs, list(census_small.tasks),
                                     trunk=mtl.trunks.tabular(census_small.feature_space, [8]))
    model.compile(optimizer="adam")
    cb = callbacks.GradientConflict(str(tmp_path), next(iter(census_small.validation)), every_n_steps=1)
    cb.set_model(model)
    assert not model.preprocessing.accepts(cb.x)  # raw strings in...
    assert model.preprocessing.accepts(cb.inputs) and cb.inputs is cb.inputs  # ...encoded once
    affinity = callbacks.TaskAffinity(str(tmp_path), (cb.x, cb.y))
    affinity.set_model(model)
    assert affinity.inputs is cb.inputs  # the same batch, encoded once for both probes
    on_raw = diagnostics.cosine_matrix(diagnostics.task_gradients(model, cb.x, cb.y, cb.sample_weight))
    np.testing.assert_allclose(cb.check(1), on_raw, atol=1e-5)


@pytest.mark.slow
def test_non_finite_loss_names_the_task_and_step(rng):
    x = rng.normal(size=(64, 3)).astype("float32")
    t = x[:, 0].copy()
    # A finite label whose squared error overflows float32, in the third batch (an inf
    # label would be refused by the step's label check, naming the task).
    t[40] = 1e30
    model = same_head_model(["good", "broken"])
    # Through tf.data: numpy labels would be refused before training (tests/test_bad_inputs.py).
    batches = tf.data.Dataset.from_tensor_slices((x, {"good": x[:, 1], "broken": t})).batch(16)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 3: non-finite loss for task\(s\) \['broken'\]"):
        model.fit(batches, epochs=1, verbose=0, callbacks=[callbacks.StopOnNonFiniteLoss()])


def moe_run(tmp_path, rng, factory, **kwargs):
    """Trains a small MoE model for two epochs with the default monitoring; returns the model."""
    x = rng.normal(size=(64, 3)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1]}
    model = factory(keras.Input((3,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")],
                    expert_units=[4], **kwargs)
    model.compile(optimizer="adam")
    cbs = callbacks.monitoring(str(tmp_path), model=model)
    assert any(isinstance(c, callbacks.ExpertUtilisation) for c in cbs)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=cbs)
    return model


def decoded_weights(event):
    """Gate weights read back from the heatmap's pixels: white is 0, red is 1 (green = 255 (1 - w))."""
    png = tf.make_ndarray(event.tensor_proto)[2]  # width, height, then the encoded images
    pixels = tf.io.decode_png(png).numpy()[::24, ::24]  # one pixel per 24x24 cell
    return 1.0 - pixels[..., 1] / 255.0


@pytest.mark.slow
@pytest.mark.parametrize("factory, kwargs, tag, shape", [
    (mtl.models.mmoe, {"num_experts": 3}, "experts/utilisation", (2, 3)),
    # CGC: 2 shared experts and one per task; each task gate sees 3 of the 4.
    (mtl.models.cgc, {"num_experts": 2, "num_task_experts": 1}, "experts/utilisation", (2, 4)),
    # PLE level 0 also has the shared gate, over all 4 experts.
    (mtl.models.ple, {"num_experts": 2, "num_task_experts": 1}, "experts/utilisation_0", (3, 4)),
])
def test_expert_utilisation_heatmap_in_tensorboard(tmp_path, rng, factory, kwargs, tag, shape):
    moe_run(tmp_path, rng, factory, **kwargs)
    acc = EventAccumulator(str(tmp_path / "mtl"), size_guidance={"tensors": 0})
    acc.Reload()
    events = acc.Tensors(tag)
    assert [e.step for e in events] == [0, 1]
    weights = decoded_weights(events[-1])
    assert weights.shape == shape
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=0.02 * shape[1])  # 8-bit colour steps
    assert (weights > 0.05).sum() >= shape[0] * 2  # no gate puts everything on one expert yet

    result = json.loads((tmp_path / "mtl" / "experts.json").read_text())
    level = result["levels"][0]
    assert result["epoch"] == 1 and np.asarray(level["weights"]).shape == shape
    np.testing.assert_allclose(np.sum(level["weights"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(level["weights"], weights, atol=0.01)  # the image shows the JSON
    if factory is mtl.models.cgc:
        assert level["experts"] == ["shared_experts/0", "shared_experts/1", "a_experts/0", "b_experts/0"]
        assert level["weights"][0][3] == 0.0 and level["weights"][1][2] == 0.0  # a gate never sees b's expert


@pytest.mark.slow
def test_no_expert_utilisation_without_gates(tmp_path):
    plain = same_head_model(["a", "b"])
    assert not any(isinstance(c, callbacks.ExpertUtilisation)
                   for c in callbacks.monitoring(str(tmp_path), model=plain))
    # Given no model it is included, and stays silent on a model without gates.
    cb = callbacks.ExpertUtilisation(str(tmp_path))
    plain.fit(np.ones((8, 3)), {"a": np.ones(8), "b": np.ones(8)}, epochs=1, verbose=0, callbacks=[cb])
    assert not (tmp_path / "mtl").exists()


@pytest.mark.slow
def test_report_shows_expert_utilisation_and_gate_entropy(tmp_path, rng):
    from keras_mtl.report import render_report

    run = tmp_path / "logs" / "moe" / "r1"
    moe_run(run, rng, mtl.models.mmoe, num_experts=3)
    page = Path(render_report(tmp_path / "logs")).read_text()
    assert "Expert utilisation, shared_experts (epoch 2; rows sum to 1)" in page
    assert "Gate entropy over epochs" in page
    assert "a gate/expert_0" not in page  # gate statistics are not drawn as task curves


@pytest.mark.slow
@pytest.mark.parametrize("drawable", [True, False])
def test_architecture_diagram_in_report_or_a_note(tmp_path, rng, monkeypatch, drawable):
    from keras_mtl import diagram
    from keras_mtl.report import render_report

    drawn = []

    def fake_plot_model(model, to_file, **kwargs):  # Graphviz is not needed to test the wiring
        drawn.append(model.name)
        png = tf.io.encode_png(np.full((4, 4, 3), 200, np.uint8)).numpy()
        Path(to_file).write_bytes(png)

    monkeypatch.setattr(diagram, "available", lambda: drawable)
    monkeypatch.setattr(keras.utils, "plot_model", fake_plot_model)
    run = tmp_path / "logs" / "demo" / "r1"
    run.mkdir(parents=True)
    model = same_head_model(["up", "down"])
    result = diagram.save_diagram(model, run / diagram.FILENAME)
    assert (result is not None) == drawable == (run / "model.png").is_file()
    assert drawn == ([model.name] if drawable else [])
    x, t = data(rng, 32)
    model.fit(x, {"up": t, "down": -t}, epochs=1, verbose=0, callbacks=callbacks.monitoring(str(run)))
    page = Path(render_report(tmp_path / "logs")).read_text()
    assert ("Architecture (keras.utils.plot_model)" in page) == drawable
    assert (html.escape(diagram.MISSING) in page) != drawable


def test_real_diagram_check_never_fails_the_run(tmp_path):
    from keras_mtl import diagram

    path = diagram.save_diagram(same_head_model(["a", "b"]), tmp_path / "model.png")
    assert (path is not None) == diagram.available()
    if path:
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's `dot` is not on PATH: apt-get install graphviz (scripts/setup.sh does, as root)",
)


@pytest.mark.slow
@needs_dot
def test_real_architecture_diagram_is_drawn_and_embedded_in_the_report(tmp_path, rng):
    from keras_mtl import diagram
    from keras_mtl.report import render_report

    # Not skipped for a missing pydot: it is a dev dependency (setup.cfg), so its absence is a failure.
    assert diagram.available()
    run = tmp_path / "logs" / "moe" / "r1"
    run.mkdir(parents=True)
    model = mtl.models.mmoe(keras.Input((3,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")],
                            expert_units=[4], num_experts=2)
    model.compile(optimizer="adam")
    path = diagram.save_diagram(model, run / diagram.FILENAME)
    assert path == str(run / "model.png")
    png = Path(path).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = tf.io.decode_png(png).shape
    # Eleven layer boxes in seven rows (input, trunk, experts, gates, mixtures, heads), not an empty canvas.
    assert len(png) > 10_000 and height > 400 and width > 400
    x = rng.normal(size=(32, 3)).astype("float32")
    model.fit(x, {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1]}, epochs=1, verbose=0,
              callbacks=callbacks.monitoring(str(run), model=model))
    page = Path(render_report(tmp_path / "logs")).read_text()
    assert "<h3>Architecture (keras.utils.plot_model)</h3>" in page
    assert base64.b64encode(png).decode() in page
    assert html.escape(diagram.MISSING) not in page


@pytest.mark.slow
@needs_dot
def test_diagram_of_many_raw_inputs_starts_from_the_encoded_features(tmp_path, census_small):
    from keras_mtl import diagram

    model = mtl.models.shared_bottom(census_small.inputs, list(census_small.tasks),
                                     trunk=mtl.trunks.tabular(census_small.feature_space, [8]))
    assert len(model.inputs) > diagram.MAX_DRAWN_INPUTS
    png = Path(diagram.save_diagram(model, tmp_path / "model.png")).read_bytes()
    height, width, _ = tf.io.decode_png(png).shape
    # Every column with its lookup side by side drew 17,851 px wide; from the
    # encoded features on it is input, trunk, representation and the heads.
    assert 300 < height < 1200 and width < 1200


@pytest.mark.slow
@pytest.mark.parametrize("write_graph, full_calls", [(False, 0), (True, 1)])
def test_tensorboard_skips_per_step_work_it_would_not_write(tmp_path, rng, monkeypatch, write_graph, full_calls):
    calls = []
    original = keras.callbacks.TensorBoard.on_train_batch_end
    monkeypatch.setattr(keras.callbacks.TensorBoard, "on_train_batch_end",
                        lambda self, batch, logs=None: calls.append(batch) or original(self, batch, logs))
    x, t = data(rng, 64)
    model = same_head_model(["up", "down"])
    tb = callbacks.LeanTensorBoard(str(tmp_path), write_graph=write_graph)
    model.fit(x, {"up": t, "down": -t}, batch_size=16, epochs=2, verbose=0, callbacks=[tb],
              validation_data=(x, {"up": t, "down": -t}))
    assert len(calls) == full_calls  # only the first step, to write the graph
    # Per-epoch scalars only: Keras' epoch logging writes through keras_mtl._events (no TF ops per value).
    assert isinstance(tb.summary, events.ScalarSummaries) is (not write_graph)
    history = model.history.history
    for run, prefix in (("train", ""), ("validation", "val_")):
        acc = EventAccumulator(str(tmp_path / run), size_guidance={"tensors": 0})
        acc.Reload()
        written = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("epoch_up_loss")]
        np.testing.assert_allclose(written, history[f"{prefix}up_loss"], rtol=1e-6)  # epoch logging is Keras' own
    steps = [e.step for e in acc.Tensors("evaluation_up_loss_vs_iterations")]
    assert steps == [4, 8]  # Keras' evaluation scalars, stepped by the optimizer's iterations
    # Per-step logging still goes through Keras' code.
    calls.clear()
    per_step = callbacks.LeanTensorBoard(str(tmp_path / "steps"), update_freq=1, write_graph=False)
    model.fit(x, {"up": t, "down": -t}, batch_size=16, epochs=1, verbose=0, callbacks=[per_step])
    assert len(calls) == 4
