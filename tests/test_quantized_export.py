"""Compressed export: int8 (Keras' own weight-only quantize) and float16 copies, served like the model."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import cli, export, saving
from keras_mtl.export import op_lint, quantization


def _rows(n: int, seed: int = 0) -> dict:
    return {"x": np.random.default_rng(seed).normal(size=(n, 32)).astype("float32")}


@pytest.fixture(scope="module")
def trained():
    """Binary + Regression (a ScaledDense head) on a Dense trunk of a few hundred units, a few steps trained."""
    model = mtl.models.shared_bottom(
        keras.Input((32,), name="x"),
        [mtl.tasks.Binary("a"), mtl.tasks.Regression("r", normalize=True)],
        trunk=mtl.trunks.mlp([256, 128]),
    )
    x = _rows(256)["x"]
    model.compile(optimizer="adam")
    model.fit(x, {"a": (x[:, 0] > 0).astype("float32"), "r": 50 + 10 * x[:, 1]}, batch_size=64, epochs=2, verbose=0)
    return model


def _snapshot(model):
    return [np.array(w, copy=True) for w in model.get_weights()]


def _unchanged(model, before) -> bool:
    after = model.get_weights()
    return (
        len(after) == len(before)
        and all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(after, before))
        and not any(layer.quantization_mode for layer in model.layers)
        and all(str(v.dtype) == "float32" for v in model.weights)
    )


def test_int8_copy_quantizes_every_dense_kernel_and_leaves_the_model_alone(trained):
    before = _snapshot(trained)
    small = quantization.quantized_copy(trained, "int8")
    assert small.model is not trained
    assert small.quantized == {"trunk_dense_0": "Dense", "trunk_dense_1": "Dense", "a": "Dense", "r/dense": "Dense"}
    assert small.left_float == {}
    assert small.model.get_layer("trunk_dense_0").kernel.dtype == "int8"
    # The regression head still returns label units: its ScaledDense statistics came along.
    scaled = small.model.get_layer("r")
    assert scaled.adapted and np.array_equal(scaled.mean.numpy(), trained.get_layer("r").mean.numpy())
    assert small.ratio <= 0.3
    diffs = quantization.output_differences(trained, small.model, _rows(64, seed=1))
    assert set(diffs) == {"a", "r"}
    assert 0 < diffs["a"] < 0.02 and 0 < diffs["r"] < 0.5  # quantized (not equal), yet close (r is ~50 +- 10)
    assert _unchanged(trained, before)
    assert quantization.is_quantized(small.model, "int8") and not quantization.is_quantized(trained, "int8")
    summary = small.summary()
    assert summary["weight_bytes"] == {"float": small.float_bytes, "int8": small.quantized_bytes}
    json.dumps(summary)  # goes into the export's metadata


def test_float16_copy_keeps_input_preprocessing_and_output_dtypes(trained):
    before = _snapshot(trained)
    half = quantization.quantized_copy(trained, "float16")
    assert half.quantized == {"trunk_dense_0": "Dense", "trunk_dense_1": "Dense"}
    assert half.left_float == {"a": "Dense", "r/dense": "Dense"}  # the output layers stay float32
    assert half.model.get_layer("trunk_dense_1").kernel.dtype == "float16"
    assert half.model.get_layer("trunk_dense_1").compute_dtype == "float16"
    assert half.model.inputs[0].dtype == "float32"
    outputs = half.model(_rows(4)["x"])
    assert {k: keras.backend.standardize_dtype(v.dtype) for k, v in outputs.items()} == {"a": "float32", "r": "float32"}
    diffs = quantization.output_differences(trained, half.model, _rows(64, seed=1))
    assert 0 < diffs["a"] < 2e-3 and diffs["r"] < 0.05
    assert 0.45 < half.ratio < 0.6
    assert _unchanged(trained, before)


def _not_quantizable():
    """A model whose only learned layer (keras_mtl's Experts) has no int8 form in Keras."""
    x = keras.Input((4,), name="x")
    experts = mtl.layers.Experts(1, [1], activation="sigmoid", name="experts")(x)
    return mtl.MultiTaskModel(x, {"a": keras.layers.Reshape((1,), name="a")(experts)}, tasks=[mtl.tasks.Binary("a")])


def test_a_model_with_nothing_int8_can_hold_is_refused_naming_its_layers(tmp_path):
    model = _not_quantizable()
    with pytest.raises(export.QuantizationError, match=r"No layer .* to int8: .*experts \(Experts\)"):
        quantization.quantized_copy(model, "int8")
    with pytest.raises(ValueError, match=r"experts \(Experts\)"):
        export.export_saved_model(model, tmp_path / "m", quantize="int8")
    assert not (tmp_path / "m").exists()  # refused before anything was written
    # float16 has a form for any layer: Experts computes in float16, the output layer stays as it is.
    half = quantization.quantized_copy(model, "float16")
    assert half.quantized == {"experts": "Experts"}


@pytest.mark.slow
def test_layers_left_in_float_are_named():
    model = mtl.models.mmoe(keras.Input((8,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")])
    small = quantization.quantized_copy(model, "int8")
    assert small.left_float == {"shared_experts": "Experts", "a_gate": "Gate", "b_gate": "Gate"}
    assert {"a", "b"} <= set(small.quantized)
    assert 0 < small.left_float_bytes < small.quantized_bytes


@pytest.mark.parametrize(
    "mode, message", [("int4", "quantize must be one of 'int8', 'float16' or None"), ("INT8", "got 'INT8'")]
)
def test_bad_modes_are_refused_before_writing(tmp_path, trained, mode, message):
    with pytest.raises(ValueError, match=message):
        export.export_saved_model(trained, tmp_path / "m", quantize=mode)
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_an_already_quantized_model_is_refused(trained):
    small = quantization.quantized_copy(trained, "int8").model
    with pytest.raises(export.QuantizationError, match="already quantized .*trunk_dense_0 \\(Dense\\)"):
        quantization.quantized_copy(small, "float16")


@pytest.mark.slow
def test_sparse_embeddings_and_mixed_precision_models_quantize():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        ids = keras.Input((3,), name="ids", dtype="int32")
        rep = keras.layers.Flatten()(mtl.layers.SparseEmbedding(500, 16, name="table")(ids))
        dense = keras.layers.Dense(8, name="d")
        model = mtl.models.shared_bottom(ids, [mtl.tasks.Binary("a")], trunk=lambda _: dense(rep))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # Keras has no int8 form for float16 compute: the copy computes in float32.
    small = quantization.quantized_copy(model, "int8")
    assert small.quantized == {"table": "SparseEmbedding", "d": "Dense", "a": "Dense"}
    assert small.model.get_layer("table").embeddings.dtype == "int8"
    assert model.get_layer("table").quantization_mode is None and model.get_layer("d").compute_dtype == "float16"
    ids_rows = {"ids": np.random.default_rng(0).integers(0, 500, (16, 3))}
    assert quantization.output_differences(model, small.model, ids_rows)["a"] < 0.02


def test_frozen_layers_are_quantized_too():
    model = mtl.models.shared_bottom(keras.Input((32,), name="x"), [mtl.tasks.Binary("a")], trunk=mtl.trunks.mlp([64]))
    model.get_layer("trunk_dense_0").trainable = False  # as a trunk frozen under new tasks
    assert set(quantization.quantized_copy(model, "int8").quantized) == {"trunk_dense_0", "a"}
    half = quantization.quantized_copy(model, "float16").model
    assert half.get_layer("trunk_dense_0").kernel.dtype == "float16" and not half.get_layer("trunk_dense_0").trainable


def test_cli_names_the_layers_it_cannot_quantize(tmp_path, capsys):
    path = saving.save_model(_not_quantizable(), tmp_path / "m.keras")
    assert cli.main(["export", path, str(tmp_path / "exports"), "--quantize", "int8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-mtl: error: No layer") and "experts (Experts)" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "exports").exists()


# ------------------------------------------------------------------ slow: real exports


@pytest.fixture(scope="module")
def float_export(tmp_path_factory, trained):
    return export.export_saved_model(trained, tmp_path_factory.mktemp("exports") / "float")


def _served(path, rows) -> dict:
    serve = tf.saved_model.load(path).signatures["serving_default"]
    return {k: v.numpy() for k, v in serve(x=tf.constant(rows["x"])).items()}


@pytest.mark.slow
def test_int8_export_serves_like_the_float_model_at_under_a_third_of_the_size(tmp_path, trained, float_export):
    before = _snapshot(trained)
    rows = _rows(32, seed=2)
    path = export.export_saved_model(trained, tmp_path / "int8", quantize="int8", warmup_samples=_rows(4, seed=3))
    assert _unchanged(trained, before)

    served, reference = _served(path, rows), _served(float_export, rows)
    np.testing.assert_allclose(served["a"], reference["a"], atol=0.02)
    np.testing.assert_allclose(served["r"], reference["r"], atol=0.5)  # r is ~50 +- 10: 1 %
    assert not np.array_equal(served["a"], reference["a"])
    assert served["a"].dtype == served["r"].dtype == np.float32

    assert op_lint.lint(path)["tensorflow_text"] == []
    ratio = quantization.variables_bytes(path) / quantization.variables_bytes(float_export)
    assert ratio <= 0.35, ratio

    meta = export.read_metadata(path)["quantization"]
    assert meta["mode"] == "int8" and meta["left_float"] == {}
    assert meta["variables_bytes"] == quantization.variables_bytes(path)
    assert set(meta["max_abs_diff_vs_float"]) == {"a", "r"} and max(meta["max_abs_diff_vs_float"].values()) < 0.5
    assert export.read_metadata(float_export)["quantization"] is None

    # Given the float model, verify compares with its int8 copy (so 1e-5 still holds) and reports both.
    report = export.verify(path, rows, trained)
    assert report["max_abs_diff"] <= 1e-5
    assert report["quantization"]["mode"] == "int8"
    assert 0 < report["quantization"]["max_abs_diff_vs_float"] < 0.5
    assert _unchanged(trained, before)


@pytest.mark.slow
def test_float16_export_loads_and_matches(tmp_path, trained, float_export):
    rows = _rows(32, seed=4)
    path = export.export_saved_model(trained, tmp_path / "f16", quantize="float16")
    served, reference = _served(path, rows), _served(float_export, rows)
    np.testing.assert_allclose(served["a"], reference["a"], atol=2e-3)
    np.testing.assert_allclose(served["r"], reference["r"], atol=0.05)
    assert served["a"].dtype == np.float32
    ratio = quantization.variables_bytes(path) / quantization.variables_bytes(float_export)
    assert 0.45 < ratio < 0.6, ratio
    report = export.verify(path, rows, trained)
    assert report["max_abs_diff"] <= 1e-5 and report["quantization"]["mode"] == "float16"


@pytest.mark.slow
def test_cli_export_quantize_prints_the_size_and_output_change(tmp_path, trained, capsys):
    model_file = saving.save_model(trained, tmp_path / "m.keras")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"x": row}) + "\n" for row in _rows(20, seed=5)["x"].tolist()))
    base = tmp_path / "exports"
    assert cli.main(["export", model_file, str(base), "--quantize", "int8", "--samples", str(rows), "--rows", "6"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(base / "1")
    assert "int8: weights" in err and "kB (float32) ->" in err and "variables/ on disk" in err
    assert "max |difference| from the float32 model on 6 sample rows" in err
    assert "serving_default latency here (median of 100 calls): batch 1: " in err and "batch 256: " in err
    meta = export.read_metadata(base / "1")
    assert meta["warmup"]["records"] > 0 and meta["quantization"]["mode"] == "int8"
    assert os.path.isfile(base / "1" / "assets.extra" / "tf_serving_warmup_requests")


@pytest.mark.slow
def test_serving_latency_names_a_missing_input(tmp_path):
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    path = export.export_saved_model(model, tmp_path)
    with pytest.raises(ValueError, match=r"no rows for input\(s\) \['x'\]"):
        export.serving_latency(path, {"y": np.ones((2, 3))})
    latency = export.serving_latency(path, {"x": np.ones((2, 3), "float32")}, (1, 3), calls=3, warmup=1)
    assert sorted(latency) == [1, 3] and all(ms > 0 for ms in latency.values())

