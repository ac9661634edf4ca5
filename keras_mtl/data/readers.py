"""`read`: a user's files (CSV, Parquet, JSON lines, TFRecord) to `MultiTaskData`.

Tables that fit in memory are read with pandas/pyarrow (`keras_mtl.data.files`)
and go through `from_dataframe`. With `stream=True`, CSV and TFRecord files
are read batch by batch by tf.data's own readers and never held in memory:
column types, vocabularies and normalisation statistics then come from the
first `sample_rows` rows, and a single file is split into train, validation
and test by a seeded hash of each row's position, the same in every pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl.data import files
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.data.pipeline import pipeline_options
from keras_mtl.data.table import SPLITS, from_dataframe
from keras_mtl.tasks import Task, check_unique

Paths = "str | Sequence[str] | Mapping[str, str | Sequence[str]]"


def read(
    paths,
    tasks: Sequence[Task],
    *,
    format: str | None = None,
    features: Sequence[str] | Mapping[str, Any] | None = None,
    split: str | Mapping[str, str] = "random",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    batch_size: int = 1024,
    seed: int = 0,
    name: str = "table",
    stream: bool = False,
    limit: int | None = None,
    sample_rows: int = 100_000,
    shuffle_buffer: int = 10_000,
    echo: Callable[[str], None] | None = print,
) -> MultiTaskData:
    """Reads a table from files and returns `MultiTaskData`, as `from_dataframe` does for a DataFrame.

    Args:
        paths: a file, a glob (`"data/part-*.csv"`) or a list of them, read as
            one table and split by `split`; or `{"train": ..., "validation":
            ..., "test": ...}`, one entry per split (those left out are taken
            from "train").
        tasks: the tasks; each reads the column named by its label key.
        format: "csv", "parquet", "jsonl" or "tfrecord"; default from the extension.
        stream: read CSV/TFRecord files with tf.data, batch by batch, instead
            of into memory (for tables larger than memory). Types and
            statistics come from the first `sample_rows` rows; a `"random"`
            split hashes row positions; `{"column": ...}` filters on the
            column; time splits need the splits as separate files.
        limit: read only the first `limit` rows of each file (quick runs; not with `stream`).
        shuffle_buffer: rows shuffled at a time when streaming.
        features: as in `from_dataframe`, and so are `split`,
            `validation_fraction`, `test_fraction`, `batch_size`, `seed`,
            `name` and `echo`.

    Example:
    >>> import os, tempfile, keras_mtl as mtl
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> pd.DataFrame({"x": np.arange(50.0), "y": np.arange(50) % 2}).to_csv(path, index=False)
    >>> data = read(path, [mtl.tasks.Binary("y")], echo=None)
    >>> {s: len(data.columns[s][0]["x"]) for s in ("train", "validation", "test")}
    {'train': 40, 'validation': 5, 'test': 5}
    """
    tasks = check_unique(tasks)
    given = dict(paths) if isinstance(paths, Mapping) else {"train": paths}
    unknown = sorted(set(given) - set(SPLITS))
    if unknown or "train" not in given:
        raise ValueError(f"Give the files as {{'train': ..., 'validation': ..., 'test': ...}}; got keys {sorted(given)}.")
    kwargs = dict(features=features, batch_size=batch_size, seed=seed, name=name, echo=echo)
    if not stream:
        frames = {s: files.read_frame(p, format=format, nrows=limit) for s, p in given.items()}
        return from_dataframe(
            frames if len(frames) > 1 else frames["train"], tasks, split=split,
            validation_fraction=validation_fraction, test_fraction=test_fraction, **kwargs,
        )
    if limit is not None:
        raise ValueError("limit= reads the first rows into memory; it does not apply to stream=True.")
    return _read_stream(
        given, tasks, format, split, validation_fraction, test_fraction, sample_rows, shuffle_buffer, kwargs
    )


def _read_stream(given, tasks, format, split, validation_fraction, test_fraction, sample_rows, shuffle_buffer, kwargs):
    grouped = [t.name for t in tasks if t.group is not None]
    if grouped:
        # Streamed rows are shuffled through a buffer, which scatters each
        # group over many batches; a ranking loss compares a batch's examples.
        raise ValueError(
            f"stream=True does not read Ranking tasks {grouped}: their loss compares the examples of a "
            "group within a batch; read the table with stream=False (in memory)."
        )
    sources = {s: files.expand(p) for s, p in given.items()}
    kind = format or files.detect_format(sources["train"][0])
    if kind not in ("csv", "tfrecord"):
        raise ValueError(f"stream=True reads CSV and TFRecord files; {sources['train'][0]!r} is {kind}. Read it with stream=False.")
    wanted = [s for s in ("validation", "test") if s not in given]
    if wanted and split != "random":
        raise ValueError(
            f"stream=True splits one file by a seeded hash of the row position (split='random'); for "
            f"split={split!r} give the splits as separate files ({{'train': ..., 'validation': ..., 'test': ...}})."
        )
    samples = {s: files.read_frame(p, format=kind, nrows=sample_rows) for s, p in sources.items()}
    fractions = (validation_fraction, test_fraction)
    if wanted:
        # The sample is split exactly as the stream will be, so types and
        # statistics come from training rows only.
        sample = samples.pop("train")
        assign = _assignments(np.arange(len(sample)), fractions, kwargs["seed"])
        for s in SPLITS:
            if s == "train" or s in wanted:
                samples[s] = sample[assign == SPLITS.index(s)].reset_index(drop=True)
    data = from_dataframe(samples, tasks, **kwargs)
    header = list(files.read_frame(sources["train"], format=kind, nrows=1).columns) if kind == "csv" else None
    datasets = {}
    for s in SPLITS:
        paths = sources.get(s, sources["train"])
        rows = _rows(paths, kind, header, data, tasks, samples["train"])
        if s in wanted or (s == "train" and wanted):
            keep = SPLITS.index(s)
            rows = _filtered(rows, fractions, kwargs["seed"], keep)
        if s == "train":
            rows = rows.shuffle(shuffle_buffer, seed=kwargs["seed"], reshuffle_each_iteration=True)
        datasets[s] = rows.batch(kwargs["batch_size"]).prefetch(2).with_options(pipeline_options())
    return dataclasses.replace(data, streamed=True, **datasets)


def _unit_hash(index, seed: int):
    """A uniform number in [0, 1) for each row position: the same in numpy and in tf.data."""
    if isinstance(index, np.ndarray):
        h = (index.astype(np.int64) * 2654435761 + seed * 97 + 12345) % (2**32)
        return h / 2.0**32
    h = tf.math.floormod(index * 2654435761 + seed * 97 + 12345, 2**32)
    return tf.cast(h, tf.float64) / 2.0**32


def _assignments(index: np.ndarray, fractions, seed: int) -> np.ndarray:
    """0 (train), 1 (validation) or 2 (test) for each row position (numpy, for the in-memory sample)."""
    u = _unit_hash(index, seed)
    validation, test = fractions
    return np.where(u < test, 2, np.where(u < test + validation, 1, 0))


def _filtered(rows: tf.data.Dataset, fractions, seed: int, keep: int) -> tf.data.Dataset:
    """The rows `_assignments` gives to split `keep`, by the same hash, in tf.data."""
    validation, test = fractions

    def chosen(i, element):
        u = _unit_hash(i, seed)
        part = tf.where(u < test, 2, tf.where(u < test + validation, 1, 0))
        return tf.equal(part, keep)

    return rows.enumerate().filter(chosen).map(lambda i, element: element)


def _rows(paths, kind, header, data: MultiTaskData, tasks, sample: pd.DataFrame) -> tf.data.Dataset:
    """Unbatched `(features, labels)` rows of `paths`, as the model's inputs and the tasks' labels."""
    types = data.column_types
    labels = list(dict.fromkeys(t.label for t in tasks))
    if kind == "csv":
        wanted = [c for c in header if c in types or c in labels]
        # pandas reads True/False cells as booleans; CsvDataset reads them as text.
        booleans = [c for c in wanted if c in types and pd.api.types.is_bool_dtype(sample[c].dtype)]
        defaults = []
        for c in wanted:
            if c in labels:
                defaults.append(tf.constant(np.nan, tf.float32))
            elif types[c].dtype == "string" or c in booleans:
                defaults.append(tf.constant("", tf.string))
            else:  # numbers are required: a missing one stops the read, naming the record
                defaults.append(tf.constant([], tf.as_dtype(types[c].dtype)))
        select = [header.index(c) for c in wanted]
        rows = tf.data.experimental.CsvDataset(paths, defaults, header=True, select_cols=select)

        def named(*values):
            row = dict(zip(wanted, values))
            for c in booleans:
                row[c] = tf.cast(tf.strings.regex_full_match(tf.strings.lower(row[c]), "true|1"), tf.int64)
            return row

        rows = rows.map(named)
    else:
        spec = {}
        for c in list(types) + labels:
            if c in labels:
                is_int = pd.api.types.is_integer_dtype(sample[c].dtype)
                spec[c] = tf.io.FixedLenFeature([], tf.int64 if is_int else tf.float32, -1 if is_int else np.nan)
            elif types[c].kind == "list":
                spec[c] = tf.io.VarLenFeature(tf.string)
            else:  # parsed as stored (int64_list, float_list, bytes_list), cast below
                stored = sample[c].dtype
                dtype = (
                    tf.int64 if pd.api.types.is_integer_dtype(stored) or pd.api.types.is_bool_dtype(stored)
                    else tf.float32 if pd.api.types.is_float_dtype(stored) else tf.string
                )
                spec[c] = tf.io.FixedLenFeature([], dtype, "" if dtype == tf.string else None)
        rows = tf.data.TFRecordDataset(paths).map(lambda record: tf.io.parse_single_example(record, spec))

    def arrange(row):
        features = {}
        for c, t in types.items():
            value = row[c]
            if isinstance(value, tf.SparseTensor):
                value = tf.strings.reduce_join(value.values, separator=" ")
            features[c] = tf.reshape(tf.cast(value, tf.as_dtype(t.dtype)) if t.dtype != "string" else value, [1])
        out = {}
        for task in tasks:
            value = tf.cast(row[task.label], tf.float32)
            if task.target_kind == "sparse":
                value = tf.where(tf.math.is_nan(value), tf.constant(-1, tf.int64), tf.cast(value, tf.int64))
            out[task.label] = value
        return features, out

    return rows.map(arrange)
