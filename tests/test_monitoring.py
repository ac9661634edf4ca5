"""Monitoring: gradient conflict, task affinity and per-task scalars, read back from the event files."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import keras_mtl as mtl
from keras_mtl import callbacks, diagnostics


def same_head_model(names):
    """A linear shared layer and identical linear heads: task gradients on the
    shared layer then differ only through the targets."""
    x = keras.Input((3,), name="x")
    model = mtl.models.shared_bottom(
        x, [mtl.tasks.Regression(n) for n in names], trunk=mtl.trunks.mlp([4], activation="linear")
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


def test_suggest_groups_errors():
    with pytest.raises(ValueError, match="num_groups must be between 1 and the number of tasks"):
        diagnostics.suggest_groups(np.zeros((2, 2)), ["a", "b"], 3)


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


def test_bad_frequencies(tmp_path):
    with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
        callbacks.GradientConflict(str(tmp_path), probe=(np.ones((1, 3)), {}), every_n_steps=0)


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

    from keras_mtl.hparams import flatten, log_hparams

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



def test_non_finite_loss_names_the_task_and_step(rng):
    x = rng.normal(size=(64, 3)).astype("float32")
    t = x[:, 0].copy()
    t[40] = np.inf  # a corrupt label (not the NaN missing marker) in the third batch
    model = same_head_model(["good", "broken"])
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 3: non-finite loss for task\(s\) \['broken'\]"):
        model.fit(x, {"good": x[:, 1], "broken": t}, batch_size=16, epochs=1, verbose=0, shuffle=False,
                  callbacks=[callbacks.StopOnNonFiniteLoss()])
