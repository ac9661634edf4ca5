"""keras_mtl.data.files: users' CSV/TSV, Parquet, JSON-lines and TFRecord files as DataFrames, and their errors."""

import gzip
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_mtl.data import files

ROWS = pd.DataFrame({"id": [1, 2, 3, 4, 5], "age": [38.5, 41.0, 22.0, 57.0, 33.0], "color": ["red", "NA", "007", "blue", "red"]})


def write_all_formats(tmp_path, frame=ROWS):
    """`frame` as one file of each format (CSV, TSV.gz, Parquet, JSONL, TFRecord); {name: path}."""
    paths = {
        "csv": tmp_path / "t.csv",
        "tsv.gz": tmp_path / "t.tsv.gz",
        "parquet": tmp_path / "t.parquet",
        "jsonl": tmp_path / "t.jsonl",
        "tfrecord": tmp_path / "t.tfrecord",
    }
    frame.to_csv(paths["csv"], index=False)
    frame.to_csv(paths["tsv.gz"], index=False, sep="\t")
    frame.to_parquet(paths["parquet"], index=False)
    frame.to_json(paths["jsonl"], orient="records", lines=True)
    with tf.io.TFRecordWriter(str(paths["tfrecord"])) as writer:
        for row in frame.itertuples(index=False):
            writer.write(example(id=[row.id], age=[row.age], color=[row.color]).SerializeToString())
    return paths


def example(**features):
    def feature(values):
        if isinstance(values[0], str):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
        if isinstance(values[0], (float, np.floating)):
            return tf.train.Feature(float_list=tf.train.FloatList(value=values))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    return tf.train.Example(features=tf.train.Features(feature={k: feature(v) for k, v in features.items()}))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.csv", "csv"), ("a.TSV", "csv"), ("a.csv.gz", "csv"), ("a.parquet", "parquet"), ("a.pq", "parquet"),
        ("a.jsonl", "jsonl"), ("a.ndjson.gz", "jsonl"), ("a.json", "jsonl"), ("a.tfrecord", "tfrecord"),
        ("a.tfrecords.gz", "tfrecord"), ("dir.v2/part-0.csv", "csv"),
    ],
)
def test_detect_format_from_the_extension(name, expected):
    assert files.detect_format(name) == expected


def test_detect_format_errors_and_override():
    assert files.detect_format("rows.txt", format="csv") == "csv"
    with pytest.raises(files.DataFileError, match=r"Cannot tell the format of rows.txt from its extension '.txt'"):
        files.detect_format("rows.txt")
    with pytest.raises(files.DataFileError, match=r"Unknown format 'xlsx' for rows.txt; use one of csv, parquet"):
        files.detect_format("rows.txt", format="xlsx")
    with pytest.raises(files.DataFileError, match="a.parquet.gz: a Parquet file is compressed inside"):
        files.detect_format("a.parquet.gz")


@pytest.mark.parametrize("kind", ["csv", "tsv.gz", "parquet", "jsonl", "tfrecord"])
def test_every_format_reads_the_same_rows(tmp_path, kind):
    path = write_all_formats(tmp_path)[kind]
    frame = files.read_frame(path, text_columns=["color"])
    # A tf.Example's features are a map: sorted by name.
    assert list(frame.columns) == (["age", "color", "id"] if kind == "tfrecord" else ["id", "age", "color"])
    assert frame["id"].tolist() == [1, 2, 3, 4, 5]
    assert frame["id"].dtype == np.int64
    np.testing.assert_allclose(frame["age"].to_numpy(np.float64), ROWS["age"])
    # "NA" and "007" are text in every format (CSV: because they are text columns).
    assert frame["color"].tolist() == ["red", "NA", "007", "blue", "red"]
    first = files.read_frame(path, columns=["color", "id"], nrows=2, text_columns=["color"])
    assert list(first.columns) == ["color", "id"]
    assert first.to_dict("list") == {"color": ["red", "NA"], "id": [1, 2]}
    chunks = list(files.iter_frames(path, 2, columns=["id"], text_columns=["color"]))
    assert [c.index.tolist() for c in chunks] == [[0, 1], [2, 3], [4]]
    assert [c["id"].tolist() for c in chunks] == [[1, 2], [3, 4], [5]]
    assert {c.attrs["source"] for c in chunks} == {str(path)}


def test_csv_without_text_columns_reads_like_pandas(tmp_path):
    path = write_all_formats(tmp_path)["csv"]
    frame = files.read_frame(path)
    assert frame["color"].isna().tolist() == [False, True, False, False, False]  # pandas' "NA"
    assert frame.equals(pd.read_csv(path))


def test_tfrecord_lists_none_and_bytes(tmp_path):
    path = tmp_path / "x.tfrecords.gz"
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        writer.write(example(ids=[1, 2, 3], name=["café"], blob=["x"]).SerializeToString())
        ex = example(ids=[4], name=["b"])
        ex.features.feature["blob"].bytes_list.value.append(b"\xff\xfe")
        writer.write(ex.SerializeToString())
        writer.write(example(name=["c"], blob=["z"]).SerializeToString())
    frame = files.read_frame(path)
    assert frame.to_dict("list") == {"ids": [[1, 2, 3], 4, None], "name": ["café", "b", "c"], "blob": ["x", b"\xff\xfe", "z"]}


def test_globs_and_lists_concatenate_in_order(tmp_path):
    for i in range(3):
        ROWS.iloc[i : i + 1].to_csv(tmp_path / f"part-{i}.csv", index=False)
    frame = files.read_frame(str(tmp_path / "part-*.csv"))
    assert frame["id"].tolist() == [1, 2, 3] and frame.index.tolist() == [0, 1, 2]
    both = files.read_frame([tmp_path / "part-2.csv", str(tmp_path / "part-[01].csv")], nrows=2)
    assert both["id"].tolist() == [3, 1]
    chunks = list(files.iter_frames(str(tmp_path / "*.csv"), 10))
    assert [c.attrs["source"] for c in chunks] == [str(tmp_path / f"part-{i}.csv") for i in range(3)]
    with pytest.raises(FileNotFoundError, match=r"No file matches .*nothing-\*\.csv\."):
        files.read_frame(str(tmp_path / "nothing-*.csv"))
    with pytest.raises(FileNotFoundError, match=r"No such file: .*missing\.csv\."):
        files.expand([tmp_path / "part-0.csv", tmp_path / "missing.csv"])
    with pytest.raises(files.DataFileError, match="is a folder; name its files"):
        files.expand(tmp_path)


def test_iter_frames_streams_a_large_csv(tmp_path):
    path = tmp_path / "big.csv"
    pd.DataFrame({"x": np.arange(10_001)}).to_csv(path, index=False)
    sizes = [len(c) for c in files.iter_frames(path, 4096)]
    assert sizes == [4096, 4096, 1809]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("h.csv", "a,b,c\n", r"h\.csv has a header \(a, b, c\) but no rows\."),
        ("e.csv", "", r"e\.csv is empty \(0 bytes\)\."),
        ("blank.csv", "\n\n", r"blank\.csv is empty \(no header line\)\."),
        ("r.csv", "a,b,c\n1,2,3\n4,5,6,7\n", r"r\.csv, line 3: 4 fields where the header has 3 \(a ragged row"),
        ("q.csv", 'a,b\n1,"2\n3,4\n', r"q\.csv, line 2: a quoted field is never closed\."),
        ("bad.jsonl", '{"a": 1}\n{"a": 2\n', r"bad\.jsonl, line 2: not valid JSON \(Expecting ',' delimiter at column 8\)\."),
        ("list.jsonl", '{"a": 1}\n[1, 2]\n', r"list\.jsonl, line 2: a JSON list, not an object of columns\."),
        ("e.jsonl", "", r"e\.jsonl is empty \(0 bytes\)\."),
        ("x.parquet", "not parquet at all", r"x\.parquet: cannot read it as Parquet \(.*magic bytes"),
        ("x.tfrecord", "garbage! " * 10, r"x\.tfrecord: cannot read it as a TFRecord file of tf\.train\.Examples \("),
        ("short.tfrecord", "garbage", r"short\.tfrecord: cannot read it as a TFRecord .* \(7 bytes but no complete record\)"),
        ("e.tfrecord", "", r"e\.tfrecord is empty \(0 bytes\)\."),
        ("latin.csv", b"a\ncaf\xe9\n", r"latin\.csv is not UTF-8 text \(byte b'\\xe9' at offset"),
    ],
)
def test_bad_files_are_one_line_errors_naming_them(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for read in (lambda: files.read_frame(path), lambda: list(files.iter_frames(path, 1))):
        with pytest.raises(files.DataFileError, match=message) as e:
            read()
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_ragged_row_in_a_later_chunk_names_its_line(tmp_path):
    path = tmp_path / "late.csv"
    path.write_text("a,b\n" + "1,2\n" * 10 + "3,4,5\n")
    chunks = files.iter_frames(path, 4)
    assert len(next(chunks)) == 4
    with pytest.raises(files.DataFileError, match=r"late\.csv, line 12: 3 fields where the header has 2"):
        list(chunks)


def test_empty_parquet_gzip_jsonl_and_missing_columns(tmp_path):
    empty = tmp_path / "e.parquet"
    ROWS.iloc[:0].to_parquet(empty)
    with pytest.raises(files.DataFileError, match=r"e\.parquet has no rows\."):
        files.read_frame(empty)
    with pytest.raises(files.DataFileError, match=r"e\.parquet has no rows\."):
        list(files.iter_frames(empty, 3))
    with gzip.open(tmp_path / "r.jsonl.gz", "wt") as f:
        f.write('{"a": 1}\n{"a": 2}\n')
    assert files.read_frame(tmp_path / "r.jsonl.gz")["a"].tolist() == [1, 2]
    paths = write_all_formats(tmp_path)
    for kind, path in paths.items():
        have = "age, color, id" if kind == "tfrecord" else "id, age, color"
        with pytest.raises(files.DataFileError, match=rf"has no columns 'age2', 'zip' \(its columns: {have}\)"):
            list(files.iter_frames(path, 2, columns=["age2", "id", "zip"]))
    with pytest.raises(files.DataFileError, match="chunk_rows must be a positive integer, got 0"):
        next(files.iter_frames(paths["csv"], 0))


def test_unreadable_files(tmp_path):
    folder_as_file = tmp_path / "dir.csv"
    folder_as_file.mkdir()
    with pytest.raises(files.DataFileError, match=r"dir\.csv is a folder"):
        files.read_frame(folder_as_file)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(files.DataFileError, match=r"broken\.csv\.gz: cannot read it as CSV \("):
        files.read_frame(broken)
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.csv"
        locked.write_text("a\n1\n")
        locked.chmod(0)
        with pytest.raises(files.DataFileError, match=r"locked\.csv: cannot read it"):
            files.read_frame(locked)


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_frame_writer_streams_and_is_atomic(tmp_path, ext):
    path = tmp_path / f"scores.{ext}"
    with files.FrameWriter(path) as writer:
        writer.write(pd.DataFrame({"id": [1, 2], "p": [0.5, 0.25]}))
        assert not path.exists()  # in place only once complete
        writer.write(pd.DataFrame({"id": [3], "p": [1.0]}))
    assert files.read_frame(path).to_dict("list") == {"id": [1, 2, 3], "p": [0.5, 0.25, 1.0]}
    assert os.listdir(tmp_path) == [path.name]

    with pytest.raises(RuntimeError, match="interrupted"):
        with files.FrameWriter(tmp_path / f"half.{ext}") as writer:
            writer.write(pd.DataFrame({"id": [1]}))
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == [path.name]  # no half-written file, no temporary left
    with pytest.raises(files.DataFileError, match=r"a chunk has columns \['x'\]; the file has \['id', 'p'\]"):
        with files.FrameWriter(path) as writer:
            writer.write(pd.DataFrame({"id": [1], "p": [0.5]}))
            writer.write(pd.DataFrame({"x": [1]}))
    assert files.write_frame(pd.DataFrame({"a": ["x"]}), path) == str(path)
    assert files.read_frame(path)["a"].tolist() == ["x"]


def test_frame_writer_refuses_other_extensions(tmp_path):
    with pytest.raises(files.DataFileError, match=r"Cannot write .*s\.jsonl: the output must be a \.csv or \.parquet file"):
        files.FrameWriter(tmp_path / "s.jsonl")
    with pytest.raises(FileNotFoundError, match="no folder"):
        files.write_frame(ROWS, tmp_path / "nowhere" / "s.csv")
