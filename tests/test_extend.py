"""Adding tasks to a trained model: frozen trunks keep old outputs bit-identical; LwF keeps them close."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.distillation import Distillation
from keras_mtl.tasks import Binary, Multiclass, Regression

ARCHITECTURES = {
    "shared_bottom": {},
    "mmoe": {"num_experts": 3, "expert_units": [6]},
    "cgc": {"num_experts": 2, "num_task_experts": 1, "expert_units": [6]},
    "ple": {"num_levels": 2, "num_experts": 2, "num_task_experts": 1, "expert_units": [6]},
    "cross_stitch": {"column_units": [6]},
    "soft_sharing": {"column_units": [6]},
}


def _data(rng, n=96):
    x = rng.normal(size=(n, 5)).astype("float32")
    y = {
        "a": (x[:, 0] > 0).astype("float32"),
        "b": (x[:, 1] * 3 + 10).astype("float32"),
        "new": (x[:, 2] + x[:, 3] > 0).astype("float32"),
        "topic": np.clip((x[:, 4] + 1.5).astype("int64"), 0, 2),
    }
    return x, y


def _trained(architecture, rng, x, y):
    keras.utils.set_random_seed(0)
    model = mtl.models.get(architecture)(
        keras.Input((5,), name="x"), [Binary("a"), Regression("b")],
        trunk=mtl.trunks.mlp([12], dropout=0.1), **ARCHITECTURES[architecture],
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, {"a": y["a"], "b": y["b"]}, epochs=2, batch_size=32, verbose=0)
    return model


# Shared-bottom, cross-stitch and soft sharing in the fast tier; the mixtures (the slowest to
# build and trace) in the slow one.
@pytest.mark.parametrize("architecture", [
    pytest.param(a, marks=pytest.mark.slow) if a in ("cgc", "mmoe", "ple") else a for a in sorted(ARCHITECTURES)
])
def test_frozen_trunk_keeps_old_outputs_bit_identical(architecture, rng):
    x, y = _data(rng)
    old = _trained(architecture, rng, x, y)
    before = old.predict(x, verbose=0)
    old_weights = [w.copy() for w in old.get_weights()]
    new = mtl.models.extend(old, [Binary("new", tower=[4]), Multiclass("topic", 3)])
    assert sorted(new.output_names) == ["a", "b", "new", "topic"]
    trainable = {layer.name for layer in new.layers if layer.trainable_weights}
    assert trainable and all(n.startswith(("new", "topic")) for n in trainable), trainable
    if architecture in ("mmoe", "cgc", "ple"):
        gate = "new_gate" + ("_1" if architecture == "ple" else "")
        assert gate in trainable  # its own gate over the shared experts
    np.testing.assert_array_equal(new.predict(x, verbose=0)["a"], before["a"])  # the copy starts equal
    new.compile(optimizer=keras.optimizers.Adam(0.05))
    untrained = new.predict(x, verbose=0)["new"]
    new.fit(x, y, epochs=2, batch_size=32, verbose=0)
    after = new.predict(x, verbose=0)
    for task in ("a", "b"):
        np.testing.assert_array_equal(after[task], before[task], err_msg=task)
    assert np.abs(after["new"] - untrained).max() > 1e-3  # the new task learned
    for w, w0 in zip(old.get_weights(), old_weights):  # the user's model is left as it was
        np.testing.assert_array_equal(w, w0)


def test_extend_from_a_checkpoint_file_and_reload(rng, tmp_path):
    x, y = _data(rng)
    old = _trained("shared_bottom", rng, x, y)
    path = str(tmp_path / "old.keras")
    old.save(path)
    new = mtl.models.extend(path, [Binary("new")], name="extended")
    assert new.name == "extended"
    np.testing.assert_array_equal(new.predict(x, verbose=0)["b"], old.predict(x, verbose=0)["b"])
    new.compile(optimizer="adam")
    new.fit(x, {k: y[k] for k in ("a", "b", "new")}, epochs=1, batch_size=32, verbose=0)
    new.save(str(tmp_path / "new.keras"))
    loaded = mtl.saving.load_model(str(tmp_path / "new.keras"))
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["new"], new.predict(x, verbose=0)["new"], rtol=1e-6)
    assert not loaded.get_layer("a").trainable and loaded.get_layer("new").trainable  # frozen stays frozen


@pytest.mark.slow
def test_learning_without_forgetting_keeps_old_tasks_closer_than_plain_fine_tuning(rng):
    x, y = _data(rng, n=256)
    old = _trained("shared_bottom", rng, x, y)
    before = old.predict(x, verbose=0)
    # New data has labels for the new task only: the old tasks' labels are missing.
    labels = {"a": np.full(len(x), -1.0, "float32"), "b": np.full(len(x), np.nan, "float32"), "new": y["new"]}
    drift = {}
    for keep in ("none", "distill"):
        keras.utils.set_random_seed(4)
        new = mtl.models.extend(old, [Binary("new")], freeze="none")
        assert all(layer.trainable for layer in new.layers)
        distillation = Distillation(old, tasks=["a", "b"], label_weight=0.0) if keep == "distill" else None
        new.compile(optimizer=keras.optimizers.Adam(0.02), distillation=distillation)
        with np.errstate(all="ignore"):
            new.fit(x, labels, epochs=8, batch_size=32, verbose=0)
        after = new.predict(x, verbose=0)
        drift[keep] = np.abs(after["a"] - before["a"]).mean()
    assert drift["distill"] < 0.5 * drift["none"], drift


def test_bad_extensions_are_named(rng):
    x, y = _data(rng, n=32)
    old = _trained("mmoe", rng, x, y)
    with pytest.raises(ValueError, match=r"already has task\(s\) \['a'\]"):
        mtl.models.extend(old, [Binary("a")])
    with pytest.raises(ValueError, match=r"task name 'trunk_dense_0' is already the name of a layer|already the name of a layer"):
        mtl.models.extend(old, [Binary(old.layers[1].name)])
    with pytest.raises(ValueError, match=r"freeze must be one of \['trunk', 'none'\], got 'all'"):
        mtl.models.extend(old, [Binary("c")], freeze="all")
    with pytest.raises(TypeError, match="non-empty list of keras_mtl tasks"):
        mtl.models.extend(old, ["c"])
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(TypeError, match="takes a keras_mtl MultiTaskModel"):
        mtl.models.extend(plain, [Binary("c")])
    with pytest.raises(FileNotFoundError, match="No model file"):
        mtl.models.extend(os.path.join("nowhere", "m.keras"), [Binary("c")])


def test_gradient_methods_on_a_frozen_trunk_say_to_use_the_representation(rng):
    x, y = _data(rng, n=32)
    old = _trained("shared_bottom", rng, x, y)
    new = mtl.models.extend(old, [Binary("new")])
    labels = {k: y[k] for k in ("a", "b", "new")}
    new.compile(optimizer="sgd", weighting="pcgrad")
    with pytest.raises(ValueError, match="has none .*Use mode='representation'"):
        new.fit(x, labels, epochs=1, verbose=0)
    new.compile(optimizer="sgd", weighting=mtl.weighting.get("pcgrad", mode="representation"))
    new.fit(x, labels, epochs=1, verbose=0)
