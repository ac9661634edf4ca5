"""Users' table files as pandas DataFrames: CSV/TSV, Parquet, JSON lines and TFRecords of tf.Example.

| format     | extensions                      | read with                                  |
|------------|---------------------------------|--------------------------------------------|
| `csv`      | .csv, .tsv (tab-separated)      | `pandas.read_csv`                          |
| `parquet`  | .parquet, .pq                   | `pandas.read_parquet` / `pyarrow.parquet`  |
| `jsonl`    | .jsonl, .ndjson, .json (lines)  | `pandas.read_json(lines=True)`             |
| `tfrecord` | .tfrecord, .tfrecords           | `tf.data.TFRecordDataset` + `tf.io.parse_example` |

Text formats and TFRecords may end in `.gz`. Every function takes
`format=` to override the extension. `iter_frames` reads a file in chunks
without holding it in memory (batch scoring of large files); `FrameWriter`
writes CSV or Parquet chunk by chunk and puts the file in place only when it
is complete.

Every problem with a file is one line naming it: a `FileNotFoundError` for a
path or glob that matches nothing, a `DataFileError` for a file that cannot
be read as a table (empty, a header and no rows, a ragged CSV line, a bad
JSON line, not Parquet, a missing column).
"""

from __future__ import annotations

import glob
import json
import os
import re
import typing
import uuid
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = ("csv", "parquet", "jsonl", "tfrecord")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
}
_WRITABLE = {".csv": "csv", ".parquet": "parquet"}
_GLOB = re.compile(r"[*?[]")

try:  # pandas' own default NA strings ("", "NA", "nan", "NULL", ...), as read_csv uses them
    from pandas._libs.parsers import STR_NA_VALUES as _NA_STRINGS
except ImportError:  # pragma: no cover - the documented list, should the private name move
    _NA_STRINGS = {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }


class DataFileError(ValueError):
    """A data file that cannot be read (or written) as a table; the message names the file."""


class MissingColumnError(DataFileError):
    """A file lacks columns that were asked for: `path`, `missing` (in the order asked) and its `columns`."""

    def __init__(self, path, missing: typing.Sequence[str], columns: typing.Sequence[str]):
        self.path, self.missing, self.columns = str(path), list(missing), [str(c) for c in columns]
        super().__init__(
            f"{path} has no column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"(its columns: {', '.join(self.columns) or 'none'})."
        )


def detect_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The table format of `path`: `format` when given, else the one its extension names.

    Example:
    >>> detect_format("scores/part-0.tsv.gz"), detect_format("rows.ndjson"), detect_format("x.dat", "csv")
    ('csv', 'jsonl', 'csv')
    """
    if format is not None:
        if format not in FORMATS:
            raise DataFileError(f"Unknown format {format!r} for {path}; use one of {', '.join(FORMATS)}.")
        return format
    ext = _extension(path)
    if ext not in _EXTENSIONS:
        raise DataFileError(
            f"Cannot tell the format of {path} from its extension {ext or '(none)'!r}; name it "
            f"(format= / --format: {', '.join(FORMATS)}) or use one of {', '.join(_EXTENSIONS)}."
        )
    if _EXTENSIONS[ext] == "parquet" and _gzipped(path):
        raise DataFileError(
            f"{path}: a Parquet file is compressed inside (its own codecs); gunzip it to a .parquet file."
        )
    return _EXTENSIONS[ext]


def expand(path_or_paths: str | os.PathLike | typing.Iterable[str | os.PathLike]) -> list[str]:
    """The files `path_or_paths` names: paths and globs (`*`, `?`, `[...]`, `**`), in order, globs sorted.

    A glob that matches nothing, or a path that does not exist, is a
    `FileNotFoundError` naming it; a folder is a `DataFileError`.

    Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> for name in ("b.csv", "a.csv"):
    ...     _ = open(os.path.join(d, name), "w").write("x\\n1\\n")
    >>> [os.path.basename(p) for p in expand(os.path.join(d, "*.csv"))]
    ['a.csv', 'b.csv']
    """
    items = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    if not items:
        raise DataFileError("No data files given.")
    files: list[str] = []
    for item in items:
        item = os.fspath(item)
        if _GLOB.search(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                raise FileNotFoundError(f"No file matches {item}.")
            files.extend(matches)
        elif os.path.isdir(item):
            raise DataFileError(f"{item} is a folder; name its files, e.g. {os.path.join(item, '*.parquet')}.")
        elif not os.path.exists(item):
            raise FileNotFoundError(f"No such file: {item}.")
        else:
            files.append(item)
    return files


def read_frame(
    path_or_paths: str | os.PathLike | typing.Iterable[str | os.PathLike],
    format: str | None = None,
    columns: typing.Sequence[str] | None = None,
    nrows: int | None = None,
    *,
    text_columns: typing.Sequence[str] = (),
) -> pd.DataFrame:
    """The rows of one or more files (paths or globs) as one DataFrame.

    Args:
        path_or_paths: a path, a glob, or a list of them; files are read in
            order and their rows concatenated (index 0..n-1).
        format: `csv`, `parquet`, `jsonl` or `tfrecord`; default from each
            file's extension.
        columns: read only these columns (each file must have all of them).
        nrows: read at most this many rows in all.
        text_columns: CSV columns kept exactly as written, as strings:
            "007" stays "007" and "NA" or an empty cell stay strings rather
            than becoming 7 or NaN (for columns a model takes as text).
            Other formats store their types.

    TFRecord files hold `tf.train.Example`s: one column per feature of the
    first records read; a feature with one value per example is a scalar
    column, longer lists are list cells, no value is None, and bytes are
    decoded to `str` (kept as `bytes` when not UTF-8); columns are sorted
    by name (an Example's features have no order).

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "rows.csv")
    >>> _ = open(path, "w").write("id,age,code\\n7,38,007\\n8,41,NA\\n")
    >>> read_frame(path, text_columns=["code"]).to_dict("list")
    {'id': [7, 8], 'age': [38, 41], 'code': ['007', 'NA']}
    """
    nrows = _positive(nrows, "nrows")
    frames, left = [], nrows
    for path in expand(path_or_paths):
        fmt = detect_format(path, format)
        frame = _read_one(path, fmt, columns, left, text_columns)
        if len(frame) == 0:
            raise DataFileError(_no_rows(path, fmt, frame))
        frames.append(frame)
        if left is not None:
            left -= len(frame)
            if left <= 0:
                break
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame.reset_index(drop=True)


def iter_frames(
    path_or_paths: str | os.PathLike | typing.Iterable[str | os.PathLike],
    chunk_rows: int,
    format: str | None = None,
    columns: typing.Sequence[str] | None = None,
    *,
    text_columns: typing.Sequence[str] = (),
) -> typing.Iterator[pd.DataFrame]:
    """The rows of one or more files in DataFrames of at most `chunk_rows` rows, never a whole file at once.

    CSV and JSON lines are read with pandas' `chunksize`, Parquet batch by
    batch with `pyarrow.parquet.ParquetFile.iter_batches`, TFRecords streamed
    with `tf.data`. A chunk never spans two files. Its index is the row
    number within its file (0-based, counting data rows) and
    `chunk.attrs["source"]` is the file, so an error found in a chunk can
    name the file and row. Arguments, columns and errors as in `read_frame`;
    a file with no rows is an error when its first chunk is read.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "rows.jsonl")
    >>> _ = open(path, "w").write("".join(f'{{"x": {i}}}\\n' for i in range(5)))
    >>> [chunk.index.tolist() for chunk in iter_frames(path, 2)]
    [[0, 1], [2, 3], [4]]
    """
    chunk_rows = _positive(chunk_rows, "chunk_rows")
    if chunk_rows is None:
        raise DataFileError("chunk_rows must be a positive integer, got None.")
    files = expand(path_or_paths)
    formats = [detect_format(path, format) for path in files]  # every name checked before any read
    for path, fmt in zip(files, formats):
        reader = {
            "csv": _csv_chunks,
            "parquet": _parquet_chunks,
            "jsonl": _jsonl_chunks,
            "tfrecord": _tfrecord_chunks,
        }[fmt]
        start = 0
        for chunk in reader(path, chunk_rows, columns, text_columns):
            if len(chunk) == 0:
                if start == 0:
                    raise DataFileError(_no_rows(path, fmt, chunk))
                continue
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            chunk.attrs["source"] = path
            start += len(chunk)
            yield chunk
        if start == 0:
            raise DataFileError(_no_rows(path, fmt, None))


def write_frame(df: pd.DataFrame, path: str | os.PathLike) -> str:
    """Writes `df` to a `.csv` or `.parquet` file, complete or not at all; returns the path.

    Example:
    >>> import tempfile
    >>> path = write_frame(pd.DataFrame({"id": [1, 2], "p": [0.25, 0.5]}), os.path.join(tempfile.mkdtemp(), "s.parquet"))
    >>> read_frame(path).to_dict("list")
    {'id': [1, 2], 'p': [0.25, 0.5]}
    """
    with FrameWriter(path) as writer:
        writer.write(df)
    return str(path)


class FrameWriter:
    """Writes DataFrames with the same columns chunk by chunk to one `.csv` or `.parquet` file.

    The rows go to a hidden file beside `path`, which replaces `path` only
    when the writer closes without an error: an interrupted run leaves no
    half-written file at `path` (and no file at all when nothing was
    written). Parquet chunks are cast to the first chunk's schema.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "scores.csv")
    >>> with FrameWriter(path) as writer:
    ...     for start in (0, 2):
    ...         writer.write(pd.DataFrame({"row": [start, start + 1]}))
    >>> open(path).read().split()
    ['row', '0', '1', '2', '3']
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in _WRITABLE:
            raise DataFileError(
                f"Cannot write {path}: the output must be a .csv or .parquet file (got {ext or 'no extension'!r})."
            )
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"Cannot write {path}: no folder {self.path.parent}.")
        self.format = _WRITABLE[ext]
        self.rows = 0
        self.columns: list[str] = []  # those of the first chunk, which every chunk must have
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex}{ext}")
        self._handle = None  # the open CSV file, or the pyarrow ParquetWriter

    def write(self, df: pd.DataFrame) -> None:
        """Appends the rows of `df` (its index is not written)."""
        columns = [str(c) for c in df.columns]
        if self._handle is None:
            self.columns = columns
        elif columns != self.columns:
            raise DataFileError(f"{self.path}: a chunk has columns {columns}; the file has {self.columns}.")
        if self.format == "csv":
            first = self._handle is None
            if first:
                self._handle = open(self._tmp, "w", newline="")
            df.to_csv(self._handle, header=first, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                if self._handle is None:
                    table = pa.Table.from_pandas(df, preserve_index=False)
                    self._handle = pq.ParquetWriter(self._tmp, table.schema)
                else:
                    table = pa.Table.from_pandas(df, schema=self._handle.schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise DataFileError(f"{self.path}: cannot store rows {self.rows}.. as Parquet ({_first_line(e)}).") from None
            self._handle.write_table(table)
        self.rows += len(df)

    def close(self, complete: bool = True) -> None:
        """Closes the file: moved to `path` when `complete` and something was written, else removed."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
        if complete and handle is not None:
            os.replace(self._tmp, self.path)
        elif self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)


# ------------------------------------------------------------------ readers


def _read_one(path, fmt, columns, nrows, text_columns) -> pd.DataFrame:
    if fmt == "csv":
        options = _csv_options(path, columns, text_columns)
        with _csv_errors(path):
            return _select(path, pd.read_csv(path, nrows=nrows, **options), columns)
    if fmt == "parquet":
        _parquet_file(path, columns)  # names a missing column, or a file that is not Parquet
        if nrows is not None:  # pandas cannot stop early; pyarrow reads only the batches needed
            return _concat(_parquet_chunks(path, nrows, columns, (), limit=nrows))
        with _arrow_errors(path):
            return pd.read_parquet(path, engine="pyarrow", columns=list(columns) if columns else None)
    if fmt == "jsonl":
        _not_empty(path)
        with _json_errors(path):
            frame = pd.read_json(path, lines=True, dtype=False, nrows=nrows)
        return _select(path, _objects(path, frame), columns)
    return _concat(_tfrecord_chunks(path, nrows or 65536, columns, (), limit=nrows))


def _concat(chunks: typing.Iterable[pd.DataFrame]) -> pd.DataFrame:
    chunks = list(chunks)
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


def _csv_options(path, columns, text_columns) -> dict:
    sep = "\t" if _extension(path) == ".tsv" else ","
    _not_empty(path)
    with _csv_errors(path):
        header = [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
    _check_columns(path, header, columns)
    options = {"sep": sep, "usecols": list(columns) if columns else None}
    text = [c for c in text_columns if c in header]
    if text:
        # Per-column NA strings: the text columns have none, the others pandas' defaults.
        options.update(
            dtype={c: str for c in text},
            keep_default_na=False,
            na_values={c: sorted(_NA_STRINGS) for c in header if c not in text},
        )
    return options


def _csv_chunks(path, chunk_rows, columns, text_columns) -> typing.Iterator[pd.DataFrame]:
    options = _csv_options(path, columns, text_columns)
    with _csv_errors(path):
        with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
            for chunk in reader:  # usecols keeps the file's order; give the order asked for
                yield _select(path, chunk, columns)


def _jsonl_chunks(path, chunk_rows, columns, text_columns) -> typing.Iterator[pd.DataFrame]:
    _not_empty(path)
    with _json_errors(path):
        # dtype=False: JSON already says what is a number and what is text ("007" stays a string).
        with pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows) as reader:
            for chunk in reader:
                yield _select(path, _objects(path, chunk), columns)


def _objects(path, frame: pd.DataFrame) -> pd.DataFrame:
    # JSON object keys are strings: another label means a line held a list or a number.
    if not all(isinstance(c, str) for c in frame.columns):
        raise DataFileError(_bad_json_line(path) or f"{path}: a line is not a JSON object of columns.")
    return frame


def _parquet_file(path, columns):
    import pyarrow.parquet as pq

    with _arrow_errors(path):
        file = pq.ParquetFile(path)
    _check_columns(path, file.schema_arrow.names, columns)
    return file


def _parquet_chunks(path, chunk_rows, columns, text_columns, limit=None) -> typing.Iterator[pd.DataFrame]:
    file = _parquet_file(path, columns)
    left = limit
    with _arrow_errors(path):
        for batch in file.iter_batches(batch_size=chunk_rows, columns=list(columns) if columns else None):
            frame = batch.to_pandas()
            if left is not None:
                frame, left = frame.iloc[:left], left - len(frame)
            yield frame
            if left is not None and left <= 0:
                return


def _tfrecord_chunks(path, chunk_rows, columns, text_columns, limit=None) -> typing.Iterator[pd.DataFrame]:
    import tensorflow as tf

    _not_empty(path)
    compression = "GZIP" if _gzipped(path) else ""
    records = tf.data.TFRecordDataset(path, compression_type=compression)
    if limit is not None:
        records = records.take(limit)
    batches = records.batch(chunk_rows)
    with _tf_errors(path, tf):
        first = next(iter(batches.take(1).as_numpy_iterator()), None)
    if first is None:  # TensorFlow reads a file shorter than one record header as no records
        raise DataFileError(
            f"{path}: cannot read it as a TFRecord file of tf.train.Examples "
            f"({os.path.getsize(path)} bytes but no complete record)."
        )
    with _tf_errors(path, tf):
        kinds = _example_kinds(path, first)
    _check_columns(path, list(kinds), columns)
    wanted = {name: kinds[name] for name in (columns or kinds)}
    spec = {name: tf.io.VarLenFeature(dtype) for name, dtype in wanted.items()}

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        ragged = {name: tf.RaggedTensor.from_sparse(value) for name, value in parsed.items()}
        return {name: (r.flat_values, r.row_lengths()) for name, r in ragged.items()}

    with _tf_errors(path, tf):
        for batch in batches.map(parse).as_numpy_iterator():
            yield pd.DataFrame({name: _cells(*batch[name]) for name in wanted})


def _example_kinds(path, serialized: np.ndarray) -> dict:
    """`{feature: tf dtype}` over some serialized tf.Examples, in first-seen order."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    dtypes = {"bytes_list": tf.string, "float_list": tf.float32, "int64_list": tf.int64}
    kinds: dict[str, str] = {}
    for i, record in enumerate(serialized):
        try:
            example = tf.train.Example.FromString(record)
        except DecodeError:
            raise DataFileError(f"{path}: record {i} is not a tf.train.Example.") from None
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            if kind is None:
                continue
            if kinds.setdefault(name, kind) != kind:
                raise DataFileError(
                    f"{path}: feature {name!r} is a {kinds[name]} in earlier records and a {kind} in record {i}."
                )
    if not kinds:
        raise DataFileError(f"{path}: its first records hold tf.train.Examples with no features.")
    # Sorted: a tf.Example's features are a map, with no order to keep.
    return {name: dtypes[kinds[name]] for name in sorted(kinds)}


def _cells(values: np.ndarray, lengths: np.ndarray):
    """One cell per example: its single value, a list of its values, or None."""
    if values.dtype == object:
        values = np.array([_text(v) for v in values.tolist()] or [], dtype=object)
    if len(lengths) and np.all(lengths == 1):
        return values
    cells = np.empty(len(lengths), dtype=object)
    ends = np.cumsum(lengths)
    for i, (end, n) in enumerate(zip(ends.tolist(), lengths.tolist())):
        cells[i] = None if n == 0 else values[end - n] if n == 1 else values[end - n : end].tolist()
    return cells


def _text(value: bytes):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


# ------------------------------------------------------------------ checks and errors


class _Translate:
    """A context manager turning a library's exception into a one-line `DataFileError` naming the file."""

    def __init__(self, path, translate):
        self.path, self.translate = path, translate

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (DataFileError, FileNotFoundError, GeneratorExit)):
            return False
        message = self.translate(self.path, exc)
        if message is None:
            return False
        raise DataFileError(message) from None


def _csv_errors(path):
    def translate(path, e):
        text = _first_line(e)
        ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
        if ragged:
            want, line, got = ragged.groups()
            return (
                f"{path}, line {line}: {got} fields where the header has {want} (a ragged row: "
                "check its separators and quotes)."
            )
        quote = re.search(r"EOF inside string starting at row (\d+)", text)
        if quote:
            return f"{path}, line {int(quote.group(1)) + 1}: a quoted field is never closed."
        if isinstance(e, pd.errors.EmptyDataError):
            return f"{path} is empty (no header line)."
        if isinstance(e, UnicodeDecodeError):
            return f"{path} is not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at offset {e.start})."
        if isinstance(e, (pd.errors.ParserError, OSError, ValueError, EOFError, zlib.error)):
            return f"{path}: cannot read it as CSV ({text})."
        return None

    return _Translate(path, translate)


def _json_errors(path):
    def translate(path, e):
        if isinstance(e, (OSError, EOFError, zlib.error)):
            return f"{path}: cannot read it ({_first_line(e)})."
        if isinstance(e, (ValueError, TypeError)):
            return _bad_json_line(path) or f"{path}: cannot read it as JSON lines ({_first_line(e)})."
        return None

    return _Translate(path, translate)


def _arrow_errors(path):
    def translate(path, e):
        import pyarrow as pa

        if isinstance(e, (pa.ArrowException, OSError, ValueError)):
            return f"{path}: cannot read it as Parquet ({_first_line(e)})."
        return None

    return _Translate(path, translate)


def _tf_errors(path, tf):
    def translate(path, e):
        if isinstance(e, (tf.errors.OpError, OSError, ValueError)):
            message = getattr(e, "message", None) or _first_line(e)
            return f"{path}: cannot read it as a TFRecord file of tf.train.Examples ({_first_line(message)})."
        return None

    return _Translate(path, translate)


def _bad_json_line(path) -> str | None:
    """The first line of a JSON-lines file that is not one JSON object, named (read only on an error)."""
    import gzip

    opener = gzip.open if _gzipped(path) else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line.strip())
                except json.JSONDecodeError as e:
                    return f"{path}, line {number}: not valid JSON ({e.msg} at column {e.colno})."
                if not isinstance(value, dict):
                    return f"{path}, line {number}: a JSON {type(value).__name__}, not an object of columns."
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        return f"{path}: cannot read it as UTF-8 text ({_first_line(e)})."
    return None


def _check_columns(path, have: typing.Sequence[str], want: typing.Sequence[str] | None) -> None:
    if want is None:
        return
    missing = [c for c in want if c not in have]
    if missing:
        raise MissingColumnError(path, missing, have)


def _select(path, frame: pd.DataFrame, columns) -> pd.DataFrame:
    if columns is None or len(frame) == 0:
        return frame
    _check_columns(path, [str(c) for c in frame.columns], columns)
    return frame[list(columns)]


def _not_empty(path) -> None:
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise DataFileError(f"{path}: cannot read it ({e.strerror or e}).") from None
    if size == 0:
        raise DataFileError(f"{path} is empty (0 bytes).")


def _no_rows(path, fmt, frame) -> str:
    if fmt == "csv" and frame is not None and len(frame.columns):
        return f"{path} has a header ({', '.join(map(str, frame.columns))}) but no rows."
    return f"{path} has no rows."


def _positive(value, argument):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataFileError(f"{argument} must be a positive integer, got {value!r}.")
    return int(value)


def _extension(path) -> str:
    suffixes = [s.lower() for s in Path(os.fspath(path)).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _gzipped(path) -> bool:
    return os.fspath(path).lower().endswith(".gz")


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


__all__ = [
    "FORMATS",
    "DataFileError",
    "FrameWriter",
    "MissingColumnError",
    "detect_format",
    "expand",
    "iter_frames",
    "read_frame",
    "write_frame",
]
