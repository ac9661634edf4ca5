"""Export: versioned atomic SavedModels, TF1 graph-mode verification like TF Serving."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import export, tasks
from keras_mtl.export.verify import run_in_fresh_process


@pytest.fixture(scope="module")
def census_model(census_small):
    model = mtl.models.shared_bottom(
        census_small.inputs, census_small.tasks, trunk=mtl.trunks.tabular(census_small.feature_space, [8])
    )
    model.compile(optimizer="adam")
    model.fit(census_small.train.take(3), verbose=0)
    return model


def test_export_versions_and_verify(tmp_path, census_model, census_small):
    base = tmp_path / "census"
    first = export.export_saved_model(census_model, base)
    second = export.export_saved_model(census_model, base)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert export.versions(base) == [1, 2]
    assert sorted(os.listdir(base)) == ["1", "2"]  # nothing else left behind
    report = export.verify(second, census_small.sample(32), census_model)
    assert report["outputs"] == {"income": [32], "never_married": [32]}
    assert report["max_abs_diff"] <= 1e-5


def test_serving_signature_takes_raw_features(tmp_path, census_model):
    path = export.export_saved_model(census_model, tmp_path)
    loaded = tf.saved_model.load(path)
    sig = loaded.signatures["serving_default"]
    inputs = sig.structured_input_signature[1]
    assert inputs["education"].dtype == tf.string and inputs["education"].shape.as_list() == [None]
    assert inputs["age"].dtype == tf.float32
    assert sorted(sig.structured_outputs) == ["income", "never_married"]
    meta = export.read_metadata(path)
    assert meta["tasks"] == [
        {"name": "income", "type": "Binary", "units": 1},
        {"name": "never_married", "type": "Binary", "units": 1},
    ]
    assert meta["inputs"]["education"] == {"dtype": "string", "shape": [None]}


def test_unknown_category_goes_to_oov_in_the_export(tmp_path, census_model, census_small):
    path = export.export_saved_model(census_model, tmp_path)
    sample = census_small.sample(4)
    sample["education"] = np.array(["never seen before"] * 4, dtype=object)
    out = run_in_fresh_process(path, sample)
    assert np.all(np.isfinite(out["income"]))


def test_refuses_to_overwrite_unless_asked(tmp_path, census_model):
    export.export_saved_model(census_model, tmp_path, version=3)
    with pytest.raises(FileExistsError, match="Version 3 already exists"):
        export.export_saved_model(census_model, tmp_path, version=3)
    (tmp_path / "3" / "marker").write_text("old")
    export.export_saved_model(census_model, tmp_path, version=3, overwrite=True)
    assert not (tmp_path / "3" / "marker").exists()
    assert sorted(os.listdir(tmp_path)) == ["3"]
    assert os.path.basename(export.export_saved_model(census_model, tmp_path)) == "4"


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_bad_version(tmp_path, census_model, bad):
    with pytest.raises(ValueError, match="version must be a non-negative integer"):
        export.export_saved_model(census_model, tmp_path, version=bad)


def test_crash_mid_export_leaves_no_version(tmp_path, census_model, monkeypatch):
    backend_archive = type(keras.export.ExportArchive())  # ExportArchive() builds a backend subclass
    real = backend_archive.write_out

    def write_then_crash(self, filepath, *args, **kwargs):
        real(self, filepath, *args, **kwargs)  # a complete-looking SavedModel exists...
        raise RuntimeError("disk full")  # ...when the process fails

    monkeypatch.setattr(backend_archive, "write_out", write_then_crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_saved_model(census_model, tmp_path / "m")
    assert os.listdir(tmp_path / "m") == []
    assert export.versions(tmp_path / "m") == []


def test_verify_catches_a_different_model(tmp_path, census_model, census_small):
    path = export.export_saved_model(census_model, tmp_path)
    other = mtl.models.shared_bottom(
        census_small.inputs, census_small.tasks, trunk=mtl.trunks.tabular(census_small.feature_space, [8])
    )
    with pytest.raises(export.VerificationError, match="differ from the model's"):
        export.verify(path, census_small.sample(8), other)


def test_verify_reports_a_broken_export(tmp_path, census_small):
    broken = tmp_path / "1"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(export.VerificationError, match="failed to load"):
        export.verify(str(broken), census_small.sample(2))


def test_single_input_model_export(tmp_path):
    model = mtl.models.shared_bottom(
        keras.Input((3,), name="x"), [tasks.Regression("y"), tasks.Multiclass("k", num_classes=4)]
    )
    path = export.export_saved_model(model, tmp_path)
    report = export.verify(path, {"x": np.ones((5, 3), "float32")}, model)
    assert report["outputs"] == {"y": [5], "k": [5, 4]}
