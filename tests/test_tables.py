"""A user's own table: column types inferred and overridden, splits, from_dataframe and read (in memory and streamed)."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.data import columns as col

TASKS = [mtl.tasks.Binary("income"), mtl.tasks.Multiclass("status", num_classes=3), mtl.tasks.Regression("hours")]


def table(n=2000, seed=0):
    """Mixed columns: numeric, integer, boolean, low-cardinality strings, ~500 jobs, a
    20k-value id, free text and list-valued tags, with three label columns."""
    rng = np.random.default_rng(seed)
    words = ["good", "great", "slow", "fast", "kind", "rude", "clean", "noisy", "cheap", "dear"]
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "score": rng.normal(0, 1, n),
            "member": rng.random(n) < 0.3,
            "city": rng.choice(["Oslo", "Lima", "Pune", "Kobe"], n),
            "job": rng.choice([f"job{i}" for i in range(500)], n),
            "user_id": rng.integers(0, 20_000_000, n),
            "review": [" ".join(rng.choice(words, rng.integers(4, 9))) for _ in range(n)],
            "tags": [list(rng.choice(["a", "b", "c", "d", "e"], rng.integers(0, 4), replace=False)) for _ in range(n)],
        }
    )
    df["income"] = ((df.age > 45) ^ (df.city == "Oslo")).astype(float)
    df.loc[rng.random(n) < 0.2, "income"] = np.nan
    df["status"] = (df.age // 30 - 0).clip(0, 2)
    df.loc[rng.random(n) < 0.1, "status"] = -1
    df["hours"] = 40 + 10 * df.score + rng.normal(0, 1, n)
    return df


# ------------------------------------------------------------------ inference
def test_each_column_type_is_inferred():
    types = col.infer_types(table().drop(columns=["income", "status", "hours"]))
    kinds = {c: (t.kind, t.encoding) for c, t in types.items()}
    assert kinds == {
        "age": ("numeric", None),
        "score": ("numeric", None),
        "member": ("categorical", "one_hot"),
        "city": ("categorical", "one_hot"),
        "job": ("categorical", "embedding"),
        "user_id": ("hashed", None),
        "review": ("text", None),
        "tags": ("list", None),
    }
    assert types["user_id"].dtype == "int64" and types["city"].dtype == "string"
    # 2 x ~2000 distinct ids, rounded up to a power of two.
    assert types["user_id"].num_bins == 4096
    assert types["tags"].sequence_length == 3


def test_overrides_replace_the_inferred_type():
    df = table(300)
    types = col.infer_types(
        df, ["age", "city", "job", "review"],
        {"age": "categorical", "city": {"kind": "hashed", "num_bins": 64, "embedding_dim": 4}, "job": "drop",
         "review": {"kind": "text", "sequence_length": 5}},
    )
    assert list(types) == ["age", "city", "review"]
    assert (types["age"].kind, types["age"].dtype) == ("categorical", "int64")
    assert (types["city"].num_bins, types["city"].embedding_dim) == (64, 4)
    assert types["review"].sequence_length == 5 and all(t.why == "set by you" for t in types.values())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"city": "embedding"}, "features['city']: unknown kind 'embedding'; use one of"),
        ({"city": {"kind": "hashed", "sequence_length": 3}}, "features['city']: 'hashed' takes ['num_bins', 'embedding_dim'], not ['sequence_length']"),
        ({"city": {"kind": "hashed", "num_bins": 0}}, "features['city'].num_bins must be a positive integer, got 0"),
        ({"zip": "hashed"}, "features names column(s) ['zip'] that the table does not have"),
        ({"city": "numeric"}, "features['city'] is 'numeric' but row 0 holds 'Oslo', which is not a number"),
    ],
)
def test_bad_overrides_name_the_column(overrides, message):
    df = table(50)
    df.loc[0, "city"] = "Oslo"
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        col.infer_types(df, ["city"], overrides)


def test_ambiguous_and_unusable_columns_stop_with_the_fix():
    df = pd.DataFrame({"price": [str(i) for i in range(40)] + ["n/a"], "when": pd.date_range("2020", periods=41)})
    with pytest.raises(ValueError, match=r"Column 'price' is ambiguous: 98% of its values are numbers but row 40 holds 'n/a'"):
        col.infer_types(df, ["price"])
    with pytest.raises(ValueError, match=r"Column 'when' holds dates/times"):
        col.infer_types(df, ["when"])
    gaps = pd.DataFrame({"x": [1.0, np.nan, 3.0]})
    with pytest.raises(ValueError, match=r"Numeric column 'x' has 1 missing value\(s\) \(first at row 1\)"):
        col.infer_types(gaps)


def test_all_missing_and_string_coded_columns():
    df = pd.DataFrame({"empty": [None] * 5, "zip": ["00501", "10001", "00501", "94105", "10001"], "x": np.arange(5.0)})
    types = col.infer_types(df)
    assert "empty" not in types
    assert (types["zip"].kind, types["zip"].dtype, types["zip"].cardinality) == ("categorical", "string", 3)


def test_summary_is_printed_with_the_types(capsys):
    mtl.data.from_dataframe(table(300), TASKS)
    out = capsys.readouterr().out
    assert "Column types of 'table' (240 training rows)" in out
    assert "user_id  hashed" in out and "review   text" in out


# -------------------------------------------------------------------- splits
def test_random_split_is_seeded_and_complete():
    df = table(500).assign(row=np.arange(500))
    a = mtl.data.from_dataframe(df, TASKS, seed=3, echo=None)
    b = mtl.data.from_dataframe(df, TASKS, seed=3, echo=None)
    rows = {s: a.columns[s][0]["row"].ravel() for s in ("train", "validation", "test")}
    assert {s: len(r) for s, r in rows.items()} == {"train": 400, "validation": 50, "test": 50}
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(500))
    np.testing.assert_array_equal(rows["test"], b.columns["test"][0]["row"].ravel())


def test_time_split_holds_out_the_latest_rows():
    df = table(300).assign(day=np.random.default_rng(1).permutation(300))
    data = mtl.data.from_dataframe(df, TASKS, split={"time": "day"}, features={"day": "drop"}, echo=None)
    # The day column is dropped as a feature, so recover the rows from a column that is one.
    day_of = dict(zip(df.score.astype("float32"), df.day))
    days = {s: [day_of[v] for v in data.columns[s][0]["score"].ravel()] for s in ("train", "validation", "test")}
    assert max(days["train"]) < min(days["validation"]) and max(days["validation"]) < min(days["test"])
    assert min(days["test"]) == 270


def test_column_split_and_given_frames():
    df = table(200)
    df["fold"] = np.where(np.arange(200) < 150, "train", np.where(np.arange(200) < 170, "validation", "test"))
    data = mtl.data.from_dataframe(df, TASKS, split={"column": "fold"}, echo=None)
    assert "fold" not in data.inputs
    assert [len(data.columns[s][1]["income"]) for s in ("train", "validation", "test")] == [150, 20, 30]
    df.loc[7, "fold"] = "dev"
    with pytest.raises(ValueError, match=r"split column 'fold' holds 'dev' at row 7"):
        mtl.data.from_dataframe(df, TASKS, split={"column": "fold"}, echo=None)
    frames = {"train": table(100), "test": table(40, seed=1)}
    data = mtl.data.from_dataframe(frames, TASKS, validation_fraction=0.2, echo=None)
    assert [len(data.columns[s][1]["hours"]) for s in ("train", "validation", "test")] == [80, 20, 40]


# ---------------------------------------------------------------- bad input
def test_bad_tables_name_the_split_column_row_and_value():
    df = table(100)
    with pytest.raises(ValueError, match=r"No label column 'hours' \(task 'hours'\) in the train split"):
        mtl.data.from_dataframe(df.drop(columns=["hours"]), TASKS, echo=None)
    bad = df.copy()
    bad.loc[bad.index[3], "status"] = 7
    with pytest.raises(ValueError, match=r"Label 'status' \(task 'status'\) must hold class ids 0..2"):
        mtl.data.from_dataframe(bad, TASKS, echo=None)
    unlabelled = df.assign(income=np.nan)
    with pytest.raises(ValueError, match=r"Task 'income' \(label 'income'\) in split 'train' has no labels"):
        mtl.data.from_dataframe(unlabelled, TASKS, echo=None)
    frames = {"train": df, "validation": df.drop(columns=["job"]), "test": df}
    with pytest.raises(ValueError, match=r"Feature column 'job' is missing from the validation split"):
        mtl.data.from_dataframe(frames, TASKS, echo=None)
    with pytest.raises(ValueError, match=r"The validation split has no rows"):
        mtl.data.from_dataframe({"train": df, "validation": df.iloc[:0]}, TASKS, echo=None)


# -------------------------------------------------------------- end to end
@pytest.mark.slow
def test_a_mixed_table_trains_exports_and_verifies(tmp_path):
    data = mtl.data.from_dataframe(table(1500), TASKS, batch_size=128, echo=None)
    assert data.feature_space.output_mode == "dict"
    model = mtl.models.shared_bottom(data.inputs, data.tasks, trunk=mtl.trunks.tabular(data.feature_space, [32, 16]))
    model.compile(optimizer="adam")
    fast = data.encoded(model)
    history = model.fit(fast.train, validation_data=fast.validation, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    raw = model.evaluate(data.test, verbose=0, return_dict=True)
    encoded = model.evaluate(fast.test, verbose=0, return_dict=True)
    np.testing.assert_allclose(raw["loss"], encoded["loss"], rtol=1e-4)
    assert raw["income_auc"] > 0.6
    path = mtl.export.export_saved_model(model, str(tmp_path / "exp"), warmup_samples=data.sample(4))
    report = mtl.export.verify(path, data.sample(32), model)
    assert report["max_abs_diff"] < 1e-4


def write_csv(df, path):
    out = df.copy()
    out["tags"] = [" ".join(t) for t in out.tags]
    out.to_csv(path, index=False)
    return out


def write_tfrecord(flat, path):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in flat.itertuples(index=False):
            feature = {}
            for name, value in row._asdict().items():
                if isinstance(value, str):
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
                elif isinstance(value, (bool, np.bool_, int, np.integer)):
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.mark.slow
def test_read_csv_parquet_jsonl_and_tfrecord_give_the_same_table(tmp_path):
    df = table(400)
    flat = write_csv(df, tmp_path / "t.csv")
    flat.to_parquet(tmp_path / "t.parquet")
    flat.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    write_tfrecord(flat, tmp_path / "t.tfrecord")
    overrides = {"tags": "list"}
    results = {
        ext: mtl.data.read(str(tmp_path / f"t.{ext}"), TASKS, features=overrides, echo=None)
        for ext in ("csv", "parquet", "jsonl", "tfrecord")
    }
    base = results["csv"]
    for ext, data in results.items():
        kinds = {c: t.kind for c, t in data.column_types.items()}
        if ext == "tfrecord":  # tf.Example has no booleans: 0/1 integers are numbers
            assert kinds.pop("member") == "numeric"
        assert kinds == {c: t.kind for c, t in base.column_types.items() if ext != "tfrecord" or c != "member"}, ext
        np.testing.assert_allclose(data.columns["test"][0]["score"], base.columns["test"][0]["score"], rtol=1e-6)
        np.testing.assert_array_equal(data.columns["train"][1]["status"], base.columns["train"][1]["status"])


@pytest.mark.slow
def test_streaming_a_csv_larger_than_a_hundred_batches(tmp_path):
    df = table(2000)
    write_csv(df, tmp_path / "big.csv")
    tasks = [mtl.tasks.Binary("income"), mtl.tasks.Multiclass("status", num_classes=3)]
    features = {"tags": "list", "hours": "drop"}
    data = mtl.data.read(str(tmp_path / "big.csv"), tasks, features=features, batch_size=8, stream=True,
                         sample_rows=500, echo=None)
    assert data.streamed and len(data.columns["train"][1]["income"]) < 500  # types from the sample only
    counts = {s: sum(int(tf.shape(b[1]["income"])[0]) for b in getattr(data, s)) for s in ("train", "validation", "test")}
    assert sum(counts.values()) == 2000 and counts["train"] > 8 * 100
    assert counts == {"train": 1600, "validation": 200, "test": 200}
    # The streamed split is the sample's split: the sample's test rows are the first of the stream's.
    first_test = next(iter(data.test))[0]["score"].numpy().ravel()[:5]
    np.testing.assert_allclose(first_test, data.columns["test"][0]["score"].ravel()[:5], rtol=1e-6)
    model = mtl.models.shared_bottom(data.inputs, tasks, trunk=mtl.trunks.tabular(data.feature_space, [16]))
    model.compile(optimizer="adam")
    fast = data.encoded(model)
    history = model.fit(fast.train, validation_data=fast.validation, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all() and history["loss"][1] < history["loss"][0]


@pytest.mark.slow
def test_streaming_tfrecord_files_one_per_split(tmp_path):
    flat = write_csv(table(900), tmp_path / "unused.csv")
    for i, split in enumerate(("train", "validation", "test")):
        write_tfrecord(flat.iloc[i * 300 : (i + 1) * 300], tmp_path / f"{split}.tfrecord")
    paths = {s: str(tmp_path / f"{s}.tfrecord") for s in ("train", "validation", "test")}
    data = mtl.data.read(paths, TASKS, features={"tags": "list"}, batch_size=64, stream=True, echo=None)
    batch = next(iter(data.test))
    np.testing.assert_allclose(batch[0]["score"].numpy().ravel(), flat.score.iloc[600:664].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(batch[1]["status"].numpy(), flat.status.iloc[600:664].to_numpy())
    assert sum(int(b[1]["hours"].shape[0]) for b in data.train) == 300


@pytest.mark.slow
def test_keras_mtl_train_on_a_csv(tmp_path, capsys, monkeypatch):
    from keras_mtl import cli, export

    monkeypatch.chdir(tmp_path)
    write_csv(table(1200), tmp_path / "mytable.csv")
    (tmp_path / "my.yaml").write_text(
        "name: mytable\n"
        "data: {path: mytable.csv, batch_size: 128, features: {tags: list}}\n"
        "tasks:\n"
        "- {name: income, type: binary}\n"
        "- {name: status, type: multiclass, num_classes: 3}\n"
        "- {name: weekly_hours, type: regression, label: hours}\n"
        "train: {epochs: 2, verbose: 0}\n"
        "output: {run: r1}\n"
    )
    assert cli.main(["train", "my.yaml"]) == 0
    out = capsys.readouterr().out
    assert "Column types of 'mytable' (960 training rows)" in out and "user_id  hashed" in out
    table_rows = out.split("Test metrics (best checkpoint):")[1]
    assert "weekly_hours" in table_rows and "income" in table_rows and "verified" in out
    assert export.versions(tmp_path / "saved_models" / "mytable") == [1]
    assert cli.main(["verify", "saved_models/mytable/1"]) == 0  # replays the export's warmup rows
    assert cli.main(["predict", "saved_models/mytable", "mytable.csv", "--output", "scores.csv", "--keep", "user_id"]) == 0
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == 1200 and {"user_id", "income", "status_class_id", "weekly_hours"} <= set(scores.columns)
    # The regression answers in the label's units (hours around 40), not in z-scores.
    assert 30 < scores.weekly_hours.mean() < 50
    capsys.readouterr()

    (tmp_path / "bad.yaml").write_text(
        "name: bad\ndata: {path: mytable.csv}\ntasks:\n- {name: churn, type: binary}\n"
    )
    assert cli.main(["train", "bad.yaml"]) == 2
    assert "keras-mtl: error: data: No label column 'churn' (task 'churn') in the train split" in capsys.readouterr().err
    (tmp_path / "none.yaml").write_text("name: none\ndata: {path: nothere.csv}\ntasks:\n- {name: income, type: binary}\n")
    assert cli.main(["train", "none.yaml"]) == 2
    assert "nothere.csv" in capsys.readouterr().err
    assert not (tmp_path / "saved_models" / "bad").exists() and not (tmp_path / "logs" / "bad").exists()


def test_a_column_name_that_cannot_name_an_input():
    df = pd.DataFrame({"Annual Income ($)": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    with pytest.raises(ValueError, match=r"Column 'Annual Income \(\$\)' cannot name a model input .*"
                                         r"df.rename\(columns=\{'Annual Income \(\$\)': 'Annual_Income'\}\)"):
        col.infer_types(df, ["Annual Income ($)"])
