"""`keras-mtl predict` (streaming batch scoring) and `keras-mtl verify` on a model of a table that is not census."""

import json

import numpy as np
import pandas as pd
import pytest

import keras_mtl as mtl
from keras_mtl import cli, export
from keras_mtl.data import files

from test_serving_clients import INPUTS, keras_answer, shop_model, shop_table

SCORES = ["buy", "tier_0", "tier_1", "tier_2", "tier_class_id"]


@pytest.fixture(scope="module")
def table():
    return shop_table(300, seed=1)


@pytest.fixture(scope="module")
def model(table):
    return shop_model(table)


@pytest.fixture(scope="module")
def base(tmp_path_factory, model, table):
    base = tmp_path_factory.mktemp("exports") / "shop"
    export.export_saved_model(model, base, warmup_samples=table.iloc[:4][INPUTS])
    return base


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory, model):
    return mtl.saving.save_model(model, tmp_path_factory.mktemp("models") / "shop.keras")


def run(argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_of(argv, capsys) -> str:
    """The one-line error of a refused command (exit code 2)."""
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert err.startswith("keras-mtl: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def check_scores(scores: pd.DataFrame, model, table: pd.DataFrame):
    want = keras_answer(model, table)
    np.testing.assert_allclose(scores["buy"], want["buy"][:, 0], atol=1e-5)
    np.testing.assert_allclose(scores[["tier_0", "tier_1", "tier_2"]], want["tier"], atol=1e-5)
    np.testing.assert_array_equal(scores["tier_class_id"], np.argmax(want["tier"], -1))


@pytest.mark.slow
def test_predict_a_csv_larger_than_one_chunk(tmp_path, capsys, base, model, table):
    source = tmp_path / "rows.csv"
    table.to_csv(source, index=False)
    assert "NA" in table["color"].tolist()  # a category, as written: never read as a missing value
    output = tmp_path / "scores.csv"
    code, out, err = run(
        ["predict", base, source, "-o", output, "--chunk-rows", 64, "--batch-size", 16, "--keep", "id"], capsys
    )
    assert code == 0, err
    assert out.strip() == f"Wrote 300 rows (id, {', '.join(SCORES)}) to {output}."
    scores = pd.read_csv(output)
    assert list(scores.columns) == ["id"] + SCORES
    assert scores["id"].tolist() == table["id"].tolist()
    check_scores(scores, model, table)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_predict_parquet_and_jsonl_with_a_keras_file(tmp_path, capsys, keras_file, model, table, kind):
    source = tmp_path / f"rows.{kind}"
    if kind == "parquet":
        table.to_parquet(source, index=False)
    else:
        table.to_json(source, orient="records", lines=True)
    output = tmp_path / "scores.parquet"
    code, _, err = run(["predict", keras_file, source, "--output", output, "--chunk-rows", 100, "--keep", "id", "color"], capsys)
    assert code == 0, err
    scores = pd.read_parquet(output)
    assert list(scores.columns) == ["id", "color"] + SCORES and len(scores) == 300
    assert scores["color"].tolist() == table["color"].tolist()
    check_scores(scores, model, table)


@pytest.mark.slow
def test_predict_never_holds_the_whole_file(tmp_path, capsys, base, monkeypatch):
    source = tmp_path / "rows.csv"
    shop_table(1000).to_csv(source, index=False)
    seen = []
    real = export.Predictor.scores

    def scores(self, rows, batch_size=None):
        seen.append(len(rows))
        return real(self, rows, batch_size)

    monkeypatch.setattr(export.Predictor, "scores", scores)
    code, _, err = run(["predict", base / "1", source, "-o", tmp_path / "s.parquet", "--chunk-rows", 256], capsys)
    assert code == 0, err
    assert seen == [256, 256, 256, 232]
    assert len(files.read_frame(tmp_path / "s.parquet")) == 1000


@pytest.mark.slow
def test_predict_errors_are_one_line(tmp_path, capsys, base, table):
    source = tmp_path / "rows.csv"
    table.drop(columns="income").to_csv(source, index=False)
    assert error_of(["predict", base, source, "-o", tmp_path / "s.csv"], capsys) == (
        f"keras-mtl: error: {source} has no column 'income', an input of the model {base / '1'} "
        "(float32, shape [None]); its columns: id, age, color."
    )
    table.assign(buy=1).to_csv(source, index=False)  # the label beside the inputs
    assert "--keep: " in error_of(["predict", base, source, "-o", tmp_path / "s.csv", "--keep", "user"], capsys)
    assert "--keep 'buy' is also a score column" in error_of(
        ["predict", base, source, "-o", tmp_path / "s.csv", "--keep", "buy"], capsys
    )
    assert error_of(["predict", base, source, "-o", tmp_path / "s.json"], capsys).startswith(
        f"keras-mtl: error: Cannot write {tmp_path / 's.json'}: the output must be a .csv or .parquet file"
    )
    assert f"No such file: {tmp_path / 'none.csv'}." in error_of(["predict", base, tmp_path / "none.csv", "-o", tmp_path / "s.csv"], capsys)
    garbage = tmp_path / "rows.parquet"
    garbage.write_bytes(b"this is not parquet")
    assert f"{garbage}: cannot read it as Parquet" in error_of(["predict", base, garbage, "-o", tmp_path / "s.csv"], capsys)
    assert f"No export at {tmp_path / 'missing'}." in error_of(["predict", tmp_path / "missing", source, "-o", tmp_path / "s.csv"], capsys)
    # A bad value deep in the file: named by file and row, and no partial output is left.
    bad = table.copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[250, "age"] = "unknown"
    bad.to_csv(source, index=False)
    assert error_of(["predict", base, source, "-o", tmp_path / "s.csv", "--chunk-rows", 64], capsys) == (
        f"keras-mtl: error: {source}: Input 'age' takes float32; got strings (b'unknown') at row 250."
    )
    assert not (tmp_path / "s.csv").exists()
    assert sorted(tmp_path.iterdir()) == sorted([source, garbage])  # nor a temporary file


@pytest.mark.slow
def test_verify_replays_the_warmup_requests_by_default(capsys, base, keras_file):
    code, out, err = run(["verify", base, "--model", keras_file], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["path"] == str(base / "1") and report["warmup"]["records"] == 4
    assert report["max_abs_diff"] <= 1e-5 and report["samples"] == 0


@pytest.mark.slow
def test_verify_with_a_samples_file(tmp_path, capsys, base, keras_file, table):
    samples = tmp_path / "rows.jsonl"
    table.to_json(samples, orient="records", lines=True)  # an id column beside the inputs
    code, out, err = run(["verify", base / "1", "--model", keras_file, "--samples", samples, "--rows", 20], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["samples"] == 20 and report["cast"] == {"age": "int64 -> float32", "income": "float64 -> float32"}
    assert report["outputs"] == {"buy": [20], "tier": [20, 3], "tier_class_id": [20]}
    assert "gRPC and Python clients must send those dtypes" in err


@pytest.mark.slow
def test_verify_bad_arguments_are_one_line(tmp_path, capsys, base, model, table):
    assert f"No export at {tmp_path / 'nope'}." in error_of(["verify", tmp_path / "nope"], capsys)
    (tmp_path / "plain").mkdir()
    assert "plain is not a SavedModel export" in error_of(["verify", tmp_path / "plain"], capsys)
    samples = tmp_path / "rows.csv"
    table.drop(columns="color").to_csv(samples, index=False)
    assert error_of(["verify", base, "--samples", samples], capsys) == (
        f"keras-mtl: error: {samples} has no column 'color', an input of the export at {base / '1'} "
        "(string, shape [None]); its columns: id, age, income."
    )
    assert "--samples takes a file of rows (CSV, JSON lines, Parquet), not a count (0)" in error_of(
        ["verify", base, "--samples", "0"], capsys
    )
    assert "give --samples FILE or --dataset NAME, not both" in error_of(
        ["verify", base, "--samples", samples, "--dataset", "census_income"], capsys
    )
    assert "--dataset must be one of census_income" in error_of(["verify", base, "--dataset", "cenus"], capsys)
    bare = export.export_saved_model(model, tmp_path / "bare")
    assert error_of(["verify", bare], capsys).endswith(
        "has no warmup requests (assets.extra/tf_serving_warmup_requests) to replay; "
        "pass --samples FILE (rows with the export's inputs) or --dataset NAME."
    )


@pytest.mark.slow
def test_verify_with_a_dataset_that_lacks_the_exports_inputs(capsys, base):
    err = error_of(["verify", base, "--dataset", "census_income", "--rows", 4], capsys)
    assert "dataset 'census_income' has no column 'color', an input of the export at" in err
    assert "(2 of its 3 inputs are missing): verify it with --samples FILE." in err


def test_cli_formats_are_the_readers():
    assert cli.FORMATS == files.FORMATS  # the parser's choices, kept without importing the readers
