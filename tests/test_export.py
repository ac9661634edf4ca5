"""Export: versioned atomic SavedModels, every signature, warmup, TF1 graph-mode verification like TF Serving."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

import keras_mtl as mtl
from keras_mtl import export, tasks
from keras_mtl.export import samples as samples_lib
from keras_mtl.export import signatures, warmup
from keras_mtl.export.verification import run_requests_in_fresh_process

CENSUS_SIGNATURES = ["serving_default", "predict_income", "predict_never_married", "serve_tf_example"]


@pytest.fixture(scope="module")
def census_model(census_small):
    model = mtl.models.shared_bottom(
        census_small.inputs, census_small.tasks, trunk=mtl.trunks.tabular(census_small.feature_space, [8])
    )
    model.compile(optimizer="adam")
    model.fit(census_small.train.take(3), verbose=0)
    return model


@pytest.fixture(scope="module")
def census_export(tmp_path_factory, census_model, census_small):
    """One export with warmup requests, shared by the tests that only read it."""
    base = tmp_path_factory.mktemp("exports") / "census"
    return export.export_saved_model(census_model, base, warmup_samples=census_small.sample(4))


@pytest.fixture(scope="module")
def small_model():
    return mtl.models.shared_bottom(
        keras.Input((3,), name="x"), [tasks.Regression("y"), tasks.Multiclass("k", num_classes=4)]
    )


@pytest.mark.slow
def test_export_versions(tmp_path, small_model):
    base = tmp_path / "m"
    first = export.export_saved_model(small_model, base)
    second = export.export_saved_model(small_model, base)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert export.versions(base) == [1, 2]
    assert sorted(os.listdir(base)) == ["1", "2"]  # nothing else left behind
    assert not os.path.exists(os.path.join(second, "assets.extra", "tf_serving_warmup_requests"))


@pytest.mark.slow
def test_each_weight_is_stored_once(census_export, census_model):
    # Keras' archive alone writes every weight twice (keras-team/keras#23553).
    from test_compat import _stored_values

    assert _stored_values(Path(census_export)) == census_model.count_params()
    loaded = tf.saved_model.load(census_export)
    assert len(loaded.variables) == len(census_model.weights)


@pytest.mark.slow
def test_signatures_take_raw_features_and_examples(census_export):
    loaded = tf.saved_model.load(census_export)
    assert sorted(loaded.signatures) == sorted(CENSUS_SIGNATURES)
    sig = loaded.signatures["serving_default"]
    inputs = sig.structured_input_signature[1]
    assert inputs["education"].dtype == tf.string and inputs["education"].shape.as_list() == [None]
    assert inputs["age"].dtype == tf.float32
    assert sorted(sig.structured_outputs) == ["income", "never_married"]
    assert sorted(loaded.signatures["predict_income"].structured_outputs) == ["income"]
    ex = loaded.signatures["serve_tf_example"].structured_input_signature[1]
    assert list(ex) == ["examples"] and ex["examples"].dtype == tf.string
    assert ex["examples"].shape.as_list() == [None]
    # Wrong dtypes fail at the typed signature, before the model runs.
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a string"):
        sig(**{k: tf.constant(["x"]) for k in inputs})
    # A NaN or inf feature is refused, naming the input, in every signature taking raw features.
    request = {k: tf.constant([0.0, 1.0]) if v.dtype == tf.float32 else tf.constant(["", ""]) for k, v in inputs.items()}
    assert sig(**request)["income"].shape == (2,)
    for bad in (float("nan"), float("inf")):
        for name in ("serving_default", "predict_income"):
            with pytest.raises(tf.errors.InvalidArgumentError, match="input 'age' of the request holds NaN or inf"):
                loaded.signatures[name](**{**request, "age": tf.constant([30.0, bad])})


@pytest.mark.slow
def test_metadata_documents_every_signature(census_export):
    meta = export.read_metadata(census_export)
    assert meta["tasks"] == [
        {"name": "income", "type": "Binary", "units": 1},
        {"name": "never_married", "type": "Binary", "units": 1},
    ]
    assert meta["inputs"]["education"] == {"dtype": "string", "shape": [None]}
    assert list(meta["signatures"]) == CENSUS_SIGNATURES
    default = meta["signatures"]["serving_default"]
    assert default["method"] == "tensorflow/serving/predict"
    assert default["inputs"]["age"] == {"dtype": "float32", "shape": [None]}
    assert default["outputs"] == {
        "income": {"dtype": "float32", "shape": [None]},
        "never_married": {"dtype": "float32", "shape": [None]},
    }
    assert meta["signatures"]["predict_never_married"]["outputs"] == {
        "never_married": {"dtype": "float32", "shape": [None]}
    }
    assert meta["signatures"]["serve_tf_example"]["inputs"] == {"examples": {"dtype": "string", "shape": [None]}}
    assert meta["tf_example_features"]["age"] == {"dtype": "float32", "shape": [], "kind": "FixedLenFeature"}
    assert meta["tf_example_features"]["education"]["dtype"] == "string"
    assert meta["ops"] == {"tensorflow_text": [], "allowed": []}
    assert meta["warmup"] == {
        "file": "assets.extra/tf_serving_warmup_requests",
        "records": 4,
        "batch_size": 4,
        "model_name": "census",
    }


@pytest.mark.slow
def test_warmup_file_parses_and_replays_like_the_model(census_export, census_model, census_small):
    path = os.path.join(census_export, "assets.extra", "tf_serving_warmup_requests")
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    requests = [log.predict_log.request for log in logs]
    assert all(isinstance(r, predict_pb2.PredictRequest) for r in requests)
    assert [r.model_spec.signature_name for r in requests] == CENSUS_SIGNATURES
    assert {r.model_spec.name for r in requests} == {"census"}
    default = requests[0]
    assert default.inputs["age"].dtype == tf.float32.as_datatype_enum
    assert default.inputs["education"].dtype == tf.string.as_datatype_enum
    assert list(requests[-1].inputs) == ["examples"]
    example = tf.train.Example.FromString(tf.make_ndarray(requests[-1].inputs["examples"])[0])
    sample = census_small.sample(4)
    assert example.features.feature["age"].float_list.value[0] == pytest.approx(sample["age"][0])
    assert example.features.feature["education"].bytes_list.value[0] == sample["education"][0].encode()

    # Replayed through the TF1 loader (all records in one process): the Keras model's answers.
    replies = run_requests_in_fresh_process(census_export, logs)
    features = {k: tf.constant(v) for k, v in sample.items()}
    for request, reply in zip(requests, replies):
        assert isinstance(reply, dict), reply
        tasks_ = signatures.signature_tasks(census_model, request.model_spec.signature_name)
        want = signatures.serve(census_model, features, tasks_)
        assert sorted(reply) == sorted(want)
        for key, value in want.items():
            np.testing.assert_allclose(reply[key], value.numpy(), atol=1e-5)


@pytest.mark.slow
def test_verify_checks_every_signature_and_replays_warmup(census_export, census_model, census_small):
    report = export.verify(census_export, census_small.sample(32), census_model)
    assert report["outputs"] == {"income": [32], "never_married": [32]}
    assert report["max_abs_diff"] <= 1e-5
    assert list(report["signatures"]) == CENSUS_SIGNATURES
    assert report["signatures"]["predict_income"]["outputs"] == {"income": [32]}
    assert report["signatures"]["serve_tf_example"]["outputs"] == {"income": [32], "never_married": [32]}
    assert all(s["max_abs_diff"] <= 1e-5 for s in report["signatures"].values())
    assert report["warmup"]["records"] == 4 and report["warmup"]["max_abs_diff"] <= 1e-5


@pytest.mark.slow
def test_verify_without_model_cross_checks_signatures(census_export, census_small):
    report = export.verify(census_export, census_small.sample(8))
    assert report["reference"] == "serving_default" and report["max_abs_diff"] is None
    assert report["signatures"]["serve_tf_example"]["outputs"] == {"income": [8], "never_married": [8]}


@pytest.mark.slow
def test_unknown_category_and_wrong_dtype_in_the_tf1_loader(census_export, census_small):
    unseen = census_small.sample(4)
    unseen["education"] = np.array(["never seen before"] * 4, dtype=object)
    wrong = census_small.sample(2)
    wrong["age"] = np.array(["thirty", "forty"], dtype=object)  # a string where a float is expected
    oov, refused = run_requests_in_fresh_process(
        census_export,
        [warmup.predict_log("census", "serving_default", unseen), warmup.predict_log("census", "predict_income", wrong)],
    )
    assert np.all(np.isfinite(oov["income"]))  # unknown categories go to the OOV slot
    assert refused == "Signature 'predict_income': input 'age' expects float32 but the request has string."


@pytest.mark.slow
def test_derived_outputs_for_every_task_type(tmp_path):
    texts = np.array(["the cat sat down", "a dog ran far away", "cats and dogs", "the end"], dtype=object)
    vec = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=5)
    vec.adapt(texts)
    model = mtl.models.shared_bottom(
        keras.Input((), dtype="string", name="text"),
        [
            tasks.Tagging("ner", num_tags=3),
            tasks.Multiclass("topic", num_classes=4),
            tasks.Multilabel("labels", num_labels=2),
            tasks.Binary("spam"),
            tasks.Regression("score"),
        ],
        trunk=mtl.trunks.text(vec, units=8, embedding_dim=8, num_layers=1),
    )
    path = export.export_saved_model(model, tmp_path, warmup_samples={"text": texts[:2]})
    report = export.verify(path, {"text": texts}, model)
    assert report["outputs"] == {
        "ner": [4, 5, 3], "ner_tags": [4, 5], "topic": [4, 4], "topic_class_id": [4],
        "labels": [4, 2], "spam": [4], "score": [4],
    }
    assert report["signatures"]["predict_ner"]["outputs"] == {"ner": [4, 5, 3], "ner_tags": [4, 5]}
    assert report["signatures"]["predict_topic"]["outputs"] == {"topic": [4, 4], "topic_class_id": [4]}
    assert report["signatures"]["predict_spam"]["outputs"] == {"spam": [4]}
    assert report["warmup"]["records"] == 7
    meta = export.read_metadata(path)
    assert meta["signatures"]["predict_topic"]["outputs"]["topic_class_id"] == {"dtype": "int64", "shape": [None]}
    assert meta["signatures"]["predict_ner"]["outputs"]["ner_tags"] == {"dtype": "int64", "shape": [None, 5]}
    # verify compared the export's ids with these: argmax of the model's own probabilities.
    probs = model.predict(texts, verbose=0)
    answer = signatures.serve(model, {"text": tf.constant(texts)})
    np.testing.assert_array_equal(answer["topic_class_id"], np.argmax(probs["topic"], -1))
    np.testing.assert_array_equal(answer["ner_tags"], np.argmax(probs["ner"], -1))


@pytest.mark.slow
def test_int_bool_float64_and_variable_length_inputs_through_tf_example(tmp_path):
    ids = keras.Input((None,), dtype="int32", name="ids")
    flag = keras.Input((1,), dtype="bool", name="flag")
    wide = keras.Input((2,), dtype="float64", name="wide")

    def trunk(inputs):
        pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(inputs["ids"]))
        extra = keras.layers.Concatenate()(
            [keras.ops.cast(inputs["flag"], "float32"), keras.ops.cast(inputs["wide"], "float32")]
        )
        return keras.layers.Concatenate()([pooled, extra])

    model = mtl.models.shared_bottom(
        {"ids": ids, "flag": flag, "wide": wide}, [tasks.Binary("a"), tasks.Regression("b", units=2)], trunk=trunk
    )
    spec = signatures.example_features(model)
    assert isinstance(spec["ids"], tf.io.FixedLenSequenceFeature) and spec["ids"].dtype == tf.int64
    assert spec["flag"] == tf.io.FixedLenFeature((), tf.int64)
    assert spec["wide"] == tf.io.FixedLenFeature((2,), tf.float32)
    rows = {
        "ids": np.array([[1, 2, 3], [4, 5, 6]]),
        "flag": np.array([True, False]),
        "wide": np.array([[0.5, 1.5], [2.0, -1.0]]),
    }
    path = export.export_saved_model(model, tmp_path, warmup_samples=rows)
    report = export.verify(path, rows, model)
    assert report["signatures"]["serve_tf_example"]["outputs"] == {"a": [2], "b": [2, 2]}
    assert report["max_abs_diff"] <= 1e-5
    assert export.read_metadata(path)["inputs"]["flag"] == {"dtype": "bool", "shape": [None]}


@pytest.mark.parametrize(
    "samples, message",
    [
        ({"x": np.array([["a", "b", "c"]])}, r"Input 'x' takes float32; got strings \(b'a'\)"),
        ({"x": np.ones((2, 4))}, r"Input 'x' has shape \[2, 4\]; the signature takes \[None, 3\]"),
        ({}, r"missing \['x'\], unknown \[\]"),
        ({"x": np.ones((1, 3)), "z": np.ones(1)}, r"missing \[\], unknown \['z'\]"),
        ({"x": np.ones((0, 3))}, "same number of rows"),
    ],
)
def test_bad_warmup_samples_fail_before_writing(tmp_path, small_model, samples, message):
    with pytest.raises(ValueError, match=message):
        export.export_saved_model(small_model, tmp_path / "m", warmup_samples=samples)
    assert export.versions(tmp_path / "m") == []


def test_rows_must_agree_across_inputs():
    specs = {
        "a": tf.TensorSpec([None], tf.float32, name="a"),
        "b": tf.TensorSpec([None], tf.string, name="b"),
    }
    with pytest.raises(ValueError, match=r"same number of rows.*'a': 2, 'b': 3"):
        samples_lib.serving_inputs(specs, {"a": [1.0, 2.0], "b": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="Input 'b' takes strings; got values of dtype float64"):
        samples_lib.serving_inputs(specs, {"a": [1.0], "b": [1.0]})
    with pytest.raises(ValueError, match="Input 'n' takes int32; got non-integer values"):
        samples_lib.serving_inputs({"n": tf.TensorSpec([None], tf.int32, name="n")}, {"n": [1.5]})


def test_output_name_clash_is_refused(tmp_path):
    model = mtl.models.shared_bottom(
        keras.Input((3,), name="x"), [tasks.Multiclass("topic", 3), tasks.Binary("topic_class_id")]
    )
    with pytest.raises(ValueError, match="'topic_class_id' is claimed by both task 'topic' and task 'topic_class_id'"):
        export.export_saved_model(model, tmp_path)
    assert os.listdir(tmp_path) == []


def test_inputs_a_tf_example_cannot_carry_are_refused(tmp_path):
    grid = mtl.models.shared_bottom(
        keras.Input((None, None, 3), name="grid"), [tasks.Binary("a")],
        trunk=lambda t: keras.layers.GlobalAveragePooling2D()(t),
    )
    with pytest.raises(ValueError, match=r"Input 'grid' has per-example shape \(None, None, 3\); serve_tf_example needs"):
        export.export_saved_model(grid, tmp_path)
    with pytest.raises(ValueError, match="Input 'z' has dtype complex64, which a tf.Example cannot carry"):
        signatures.wire_dtype("z", tf.complex64)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_refuses_to_overwrite_unless_asked(tmp_path, small_model):
    export.export_saved_model(small_model, tmp_path, version=3)
    with pytest.raises(FileExistsError, match="Version 3 already exists"):
        export.export_saved_model(small_model, tmp_path, version=3)
    (tmp_path / "3" / "marker").write_text("old")
    export.export_saved_model(small_model, tmp_path, version=3, overwrite=True)
    assert not (tmp_path / "3" / "marker").exists()
    assert sorted(os.listdir(tmp_path)) == ["3"]
    assert os.path.basename(export.export_saved_model(small_model, tmp_path)) == "4"


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_bad_version(tmp_path, small_model, bad):
    with pytest.raises(ValueError, match="version must be a non-negative integer"):
        export.export_saved_model(small_model, tmp_path, version=bad)


@pytest.mark.slow
def test_crash_mid_export_leaves_no_version(tmp_path, small_model, monkeypatch):
    backend_archive = type(keras.export.ExportArchive())  # ExportArchive() builds a backend subclass
    real = backend_archive.write_out

    def write_then_crash(self, filepath, *args, **kwargs):
        real(self, filepath, *args, **kwargs)  # a complete-looking SavedModel exists...
        raise RuntimeError("disk full")  # ...when the process fails

    monkeypatch.setattr(backend_archive, "write_out", write_then_crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_saved_model(small_model, tmp_path / "m")
    assert os.listdir(tmp_path / "m") == []
    assert export.versions(tmp_path / "m") == []


@pytest.mark.slow
def test_verify_catches_a_different_model(census_export, census_small):
    other = mtl.models.shared_bottom(
        census_small.inputs, census_small.tasks, trunk=mtl.trunks.tabular(census_small.feature_space, [8])
    )
    with pytest.raises(export.VerificationError, match="serving_default: output 'income' differs from the model's") as e:
        export.verify(census_export, census_small.sample(8), other)
    # Reported per signature, warmup records included.
    for where in ("predict_never_married:", "serve_tf_example:", "warmup record 3 (serve_tf_example)"):
        assert where in str(e.value)


@pytest.mark.slow
def test_verify_reports_a_broken_export(tmp_path, census_small):
    broken = tmp_path / "1"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(export.VerificationError, match="failed to load"):
        export.verify(str(broken), census_small.sample(2))


@pytest.mark.slow
def test_single_input_model_export_and_a_bad_warmup_record(tmp_path, small_model):
    path = export.export_saved_model(small_model, tmp_path, warmup_samples={"x": np.ones((2, 3))})
    report = export.verify(path, {"x": np.ones((5, 3), "float32")}, small_model)
    assert report["outputs"] == {"y": [5], "k": [5, 4], "k_class_id": [5]}
    assert list(report["signatures"]) == ["serving_default", "predict_y", "predict_k", "serve_tf_example"]
    assert report["warmup"]["records"] == 4

    logs = warmup.read_warmup(path) + [warmup.predict_log("m", "predict_nope", {"x": np.ones((1, 3), "float32")})]
    warmup.write_warmup(path, logs)
    with pytest.raises(export.VerificationError, match=r"warmup record 4 \(predict_nope\): Signature 'predict_nope' not in the export"):
        export.verify(path, {"x": np.ones((2, 3))}, small_model)


@pytest.mark.slow
def test_an_export_never_replaces_a_version_written_since_it_chose_its_number(tmp_path, small_model, monkeypatch):
    base = tmp_path / "m"
    first = export.export_saved_model(small_model, base)
    (base / "1" / "marker").write_text("the other process's model")
    # As if the number was chosen before the other process's version 1 appeared.
    monkeypatch.setattr(export.saved_model, "versions", lambda _: [])
    second = export.export_saved_model(small_model, base)
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert (base / "1" / "marker").read_text() == "the other process's model"
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert export.read_metadata(second)["version"] == 2
    with pytest.raises(FileExistsError, match="Version 2 already exists"):
        export.export_saved_model(small_model, base, version=2)
    assert sorted(os.listdir(base)) == ["1", "2"]  # no staging folder left behind


@pytest.mark.slow
def test_eight_concurrent_exports_give_eight_versions_each_with_its_model(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    job = Path(__file__).parent / "export_job.py"
    procs = [
        subprocess.Popen([sys.executable, str(job), str(tmp_path), str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    written = {}
    for i, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        written[i] = Path(out.strip().splitlines()[-1])
    assert sorted(export.versions(tmp_path)) == list(range(1, 9))
    assert len(set(written.values())) == 8
    for fill, path in written.items():
        loaded = tf.saved_model.load(str(path))
        out = loaded.signatures["serving_default"](x=tf.ones((1, 3)))
        # Every weight is `fill`: each version must answer as the model of its own process.
        expected = _export_job().build(float(fill))(np.ones((1, 3), "float32"))["y"]
        np.testing.assert_allclose(np.ravel(out["y"]), np.ravel(expected), rtol=1e-5)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def _export_job():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("export_job", Path(__file__).parent / "export_job.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job
