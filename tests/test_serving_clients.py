"""Clients of an export with pandas dtypes: request() (gRPC proto, REST bodies), Predictor, and verify's casting."""

import base64
import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import keras_mtl as mtl
from keras_mtl import export
from keras_mtl.export import samples as samples_lib
from keras_mtl.export.verification import run_requests_in_fresh_process
from keras_mtl.preprocessing import FeatureSpace

INPUTS = ["age", "income", "color"]


def shop_table(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows as pandas reads them: int64 id and age, float64 income, text color ("NA" is a category)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n) + 1000,
        "age": rng.integers(18, 80, n),
        "income": rng.normal(5e4, 1e4, n).round(2),
        "color": rng.choice(["red", "green", "blue", "NA"], n),
    })


def shop_model(table: pd.DataFrame) -> keras.Model:
    """A numeric, a numeric and a string input; a Binary and a Multiclass task."""
    space = FeatureSpace(
        {"age": "float_normalized", "income": "float_normalized",
         "color": FeatureSpace.string_categorical(num_oov_indices=1)},
        output_mode="concat",
    )
    space.adapt({c: table[c].to_numpy("float32" if c != "color" else object)[:, None] for c in INPUTS})
    return mtl.models.shared_bottom(
        dict(space.get_inputs()), [mtl.tasks.Binary("buy"), mtl.tasks.Multiclass("tier", 3)],
        trunk=mtl.trunks.tabular(space, [8]),
    )


def keras_answer(model, rows: pd.DataFrame) -> dict:
    """The model's own outputs on rows converted by hand (float32 numbers, object strings)."""
    x = {c: tf.constant(rows[c].to_numpy("float32" if c != "color" else str)[:, None]) for c in INPUTS}
    return model.predict(x, verbose=0)


@pytest.fixture(scope="module")
def table():
    return shop_table(40)


@pytest.fixture(scope="module")
def model(table):
    return shop_model(table)


@pytest.fixture(scope="module")
def path(tmp_path_factory, model, table):
    base = tmp_path_factory.mktemp("exports") / "shop"
    return export.export_saved_model(model, base, warmup_samples=table.iloc[:4][INPUTS])


@pytest.mark.slow
def test_the_raw_signature_refuses_pandas_dtypes_and_predictor_casts(path, model, table):
    rows = table.iloc[:6]
    assert rows["age"].dtype == np.int64 and rows["income"].dtype == np.float64
    signature = tf.saved_model.load(path).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        signature(**{c: tf.constant(rows[c].to_numpy()) for c in INPUTS})  # what the helpers exist for

    want = keras_answer(model, rows)
    got = export.Predictor(path).predict(rows)  # extra column "id" ignored
    assert list(got) == ["buy", "tier", "tier_class_id"]
    np.testing.assert_allclose(got["buy"], want["buy"][:, 0], atol=1e-6)
    np.testing.assert_allclose(got["tier"], want["tier"], atol=1e-6)
    np.testing.assert_array_equal(got["tier_class_id"], np.argmax(want["tier"], -1))
    # The same from a .keras model (the same traced function), batch by batch, and from a list of row dicts.
    from_model = export.Predictor(model).predict(rows.to_dict("records"), batch_size=4)
    for key in got:
        np.testing.assert_allclose(from_model[key], got[key], atol=1e-6)
    assert export.predict(path, rows, "predict_buy").keys() == {"buy"}


@pytest.mark.slow
def test_scores_have_one_column_per_output_value_and_the_rows_index(path, table):
    rows = table.iloc[10:13]
    scores = export.Predictor(path).scores(rows, batch_size=2)
    assert list(scores.columns) == ["buy", "tier_0", "tier_1", "tier_2", "tier_class_id"]
    assert scores.index.tolist() == [10, 11, 12]
    np.testing.assert_allclose(scores[["tier_0", "tier_1", "tier_2"]].sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.slow
def test_grpc_request_has_the_exports_dtypes_and_tf_serving_answers_it(path, model, table):
    rows = table.iloc[:5]
    request = export.request(rows, path)
    assert request.model_spec.name == "shop" and request.model_spec.signature_name == "serving_default"
    assert sorted(request.inputs) == sorted(INPUTS)  # "id" is not an input
    assert request.inputs["age"].dtype == tf.float32.as_datatype_enum
    assert request.inputs["income"].dtype == tf.float32.as_datatype_enum
    assert request.inputs["color"].dtype == tf.string.as_datatype_enum
    assert tf.make_ndarray(request.inputs["age"]).tolist() == rows["age"].astype(float).tolist()
    by_example = export.request(rows, path, "serve_tf_example", model_name="shop-canary")
    assert list(by_example.inputs) == ["examples"] and by_example.model_spec.name == "shop-canary"

    logs = [prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=r))
            for r in (request, by_example)]
    default, examples = run_requests_in_fresh_process(path, logs)  # loaded as TF Serving loads it
    want = keras_answer(model, rows)
    for answer in (default, examples):
        assert isinstance(answer, dict), answer
        np.testing.assert_allclose(answer["buy"], want["buy"][:, 0], atol=1e-5)
        np.testing.assert_allclose(answer["tier"], want["tier"], atol=1e-5)


@pytest.mark.slow
def test_rest_bodies_are_json_with_the_exports_dtypes(path, table):
    rows = table.iloc[:2]
    instances = export.request(rows, path, rest="instances")
    assert json.loads(json.dumps(instances)) == instances
    assert instances == {
        "signature_name": "serving_default",
        "instances": [
            {"income": float(np.float32(r.income)), "color": r.color, "age": float(r.age)}
            for r in rows.itertuples()
        ],
    }
    columns = export.request(rows, path, "predict_tier", rest="inputs")
    assert columns["signature_name"] == "predict_tier"
    assert columns["inputs"]["age"] == rows["age"].astype(float).tolist()
    assert columns["inputs"]["color"] == rows["color"].tolist()
    examples = export.request(rows, path, "serve_tf_example", rest="inputs")["inputs"]["examples"]
    parsed = [tf.train.Example.FromString(base64.b64decode(e["b64"])) for e in examples]  # always base64
    assert [p.features.feature["color"].bytes_list.value[0].decode() for p in parsed] == rows["color"].tolist()
    with pytest.raises(ValueError, match="rest must be None"):
        export.request(rows, path, rest="json")


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.assign(age=t["age"].astype(str)), r"Input 'age' takes float32; got strings \(b'\d+'\) at row 0\."),
        (lambda t: t.drop(columns="income"),
         r"Input 'income' \(float32, shape \[None\]\) is missing; the rows have columns \['age', 'color', 'id'\]\."),
        (lambda t: t.assign(income=[1.0, np.nan, 2.0]), r"Input 'income' takes float32; got NaN at row 1 \(a missing value"),
        (lambda t: t.assign(income=[1.0, 2.0, np.inf]), r"Input 'income' takes float32; got inf at row 2\."),
        (lambda t: t.assign(income=[1.0, 1e300, 2.0]), r"Input 'income' takes float32; got a value beyond float32's range \(1e\+300\) at row 1\."),
        (lambda t: t.assign(color=["red", None, "blue"]), r"Input 'color' takes strings; got a missing value \(None\) at row 1"),
        (lambda t: t.assign(color=[0.5, 1.5, 2.5]), r"Input 'color' takes strings; got values of dtype float64 \(0\.5\) at row 0\."),
        (lambda t: t.assign(age=pd.array([30, None, 40], dtype="Int64")), r"Input 'age' takes float32; got NaN at row 1"),
        (lambda t: t.assign(when=pd.Timestamp("2024-01-01")).assign(age=lambda d: d["when"]), r"Input 'age' takes float32; got values of dtype datetime64"),
        (lambda t: "not rows", r"Rows must be a pandas DataFrame, a dict of columns or a list of row dicts; got str\."),
    ],
)
def test_rows_that_cannot_be_sent_name_the_input_and_row(path, table, change, message):
    rows = change(table.iloc[:3])
    for send in (lambda: export.request(rows, path), lambda: export.Predictor(path).predict(rows)):
        with pytest.raises(export.RequestError, match=message) as e:
            send()
        assert "\n" not in str(e.value)


def test_integer_codes_into_a_string_input_and_other_casts():
    specs = {
        "code": tf.TensorSpec([None], tf.string, name="code"),
        "n": tf.TensorSpec([None], tf.int32, name="n"),
        "flag": tf.TensorSpec([None], tf.bool, name="flag"),
    }
    rows = pd.DataFrame({"code": [6, 42], "n": [1.0, 2.0], "flag": [1, 0]}, index=[7, 8])
    sent = samples_lib.serving_inputs(specs, rows)
    assert sent["code"].tolist() == [b"6", b"42"] and sent["n"].dtype == np.int32 and sent["flag"].tolist() == [True, False]
    assert samples_lib.casts(specs, rows) == {"code": "int64 -> string", "n": "float64 -> int32", "flag": "int64 -> bool"}
    for bad, message in [
        ({"n": [1.5, 2.0]}, r"Input 'n' takes int32; got non-integer values \(1\.5\) at row 7\."),  # the DataFrame's index
        ({"n": [1.0, 3e9]}, r"Input 'n' takes int32; got a value outside int32's range \(3000000000\.0\) at row 8\."),
        ({"flag": [1, 2]}, r"Input 'flag' takes bool; got a value other than 0/1 \(2\) at row 8"),
        ({"code": [True, False]}, r"Input 'code' takes strings; got values of dtype bool"),
    ]:
        with pytest.raises(export.RequestError, match=message):
            samples_lib.serving_inputs(specs, rows.assign(**bad))
    records = [{"code": "a", "n": 1, "flag": True}, {"code": "b", "flag": False}]
    with pytest.raises(export.RequestError, match=r"Input 'n' takes int32; got a missing value \(None\) at row 1"):
        samples_lib.serving_inputs(specs, records)


@pytest.mark.slow
def test_verify_casts_pandas_dtypes_and_reports_them(path, model, table):
    report = export.verify(path, table.iloc[:8][INPUTS], model)
    assert report["cast"] == {"age": "int64 -> float32", "income": "float64 -> float32"}
    assert report["samples"] == 8 and report["max_abs_diff"] <= 1e-5
    assert report["signatures"]["serve_tf_example"]["outputs"] == {"buy": [8], "tier": [8, 3], "tier_class_id": [8]}
    with pytest.raises(export.RequestError, match=r"Input 'age' takes float32; got strings \(b'x'\) at row 2"):
        export.verify(path, table.iloc[:3][INPUTS].assign(age=[1, 2, "x"]))
    with pytest.raises(export.RequestError, match=r"missing \[\], unknown \['id'\]"):
        export.verify(path, table.iloc[:3])  # verify sends exactly the inputs: no silent extras


@pytest.mark.slow
def test_verify_without_samples_replays_the_warmup_requests(path, tmp_path, model):
    report = export.verify(path)
    assert report["samples"] == 0 and report["signatures"] == {}
    assert report["warmup"]["records"] == 4 and report["warmup"]["max_abs_diff"] <= 1e-6  # against serving_default
    assert report["outputs"] == {"buy": [4], "tier": [4, 3], "tier_class_id": [4]}
    bare = export.export_saved_model(model, tmp_path / "bare")
    with pytest.raises(export.RequestError, match="has no warmup requests .* and no samples were given"):
        export.verify(bare)


@pytest.mark.slow
def test_sources_an_export_a_base_directory_or_a_keras_file(path, model, tmp_path, table):
    base = tmp_path / "shop"
    export.export_saved_model(model, base, version=3)
    export.export_saved_model(model, base, version=12)
    (base / "99").mkdir()  # a version folder without a SavedModel is not a version
    assert export.resolve(base) == str(base / "12")
    assert export.Predictor(base).source == str(base / "12")
    keras_file = mtl.saving.save_model(model, tmp_path / "shop.keras")
    want = export.Predictor(path).predict(table.iloc[:3])
    got = export.Predictor(keras_file).predict(table.iloc[:3])
    np.testing.assert_allclose(got["tier"], want["tier"], atol=1e-6)

    with pytest.raises(FileNotFoundError, match=r"No export at .*nowhere\."):
        export.Predictor(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(export.ExportError, match=r"empty is not a SavedModel export: it holds no saved_model.pb"):
        export.request(table, tmp_path / "empty")
    with pytest.raises(export.ExportError, match=r"has no signature 'predict_nope'; it has \['serving_default', 'predict_buy'"):
        export.Predictor(path, "predict_nope")
    with pytest.raises(export.ExportError, match=r"shop\.keras: No signature 'predict_nope'"):
        export.Predictor(keras_file, "predict_nope")
    broken = tmp_path / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(export.ExportError, match=r"Cannot load the SavedModel at .*broken/1: "):
        export.Predictor(broken)
