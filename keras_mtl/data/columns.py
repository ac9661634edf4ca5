"""Column types of a user's table: inferred from the data, overridable per column.

`infer_types(frame)` looks at each feature column once and decides how the
model should read it:

| kind          | inferred for                                                   | in the model                                  |
|---------------|----------------------------------------------------------------|-----------------------------------------------|
| `numeric`     | float columns; integer columns not named like an id            | standardised (mean/std of the train split)    |
| `categorical` | booleans; strings with <= 10,000 values                        | one-hot up to 100 values, else an embedding   |
| `hashed`      | strings with more values; ids (`user_id`, `itemId`, `ID`) with more than 100 | hashed into bins, then an embedding |
| `text`        | strings averaging >= 3 words, with more than 100 values        | tokenised, embedded, mean-pooled              |
| `list`        | cells holding lists (tags, item histories)                     | tokens embedded, mean-pooled                  |

Override any column with `features={"zip": "hashed", "bio": "text",
"row_id": "drop"}`, or a dict with the options of its kind
(`{"kind": "hashed", "num_bins": 4096, "embedding_dim": 8}`). A string column
whose values are numbers except for a few (`"n/a"`, `"?"`) is ambiguous and
stops with the column, the row and the fix; so does a numeric feature with
missing values (features have no missing marker). Missing values in string,
list and text columns become the empty string, a value of its own.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing

import numpy as np
import pandas as pd

KINDS = ("numeric", "categorical", "hashed", "text", "list")
# More distinct values than this: an embedding instead of a one-hot block.
ONE_HOT_MAX = 100
# More distinct values than this: hashing instead of a vocabulary.
CATEGORICAL_MAX = 10_000
# A string column is free text when its values average this many words
# (and it is not a small set of labels).
TEXT_MIN_WORDS = 3
# Hashed columns: bins are the next power of two >= 2 x the distinct values
# seen, within these bounds; their embeddings are at most this wide.
MIN_BINS, MAX_BINS, HASHED_MAX_DIM = 2**10, 2**20, 16
_INPUT_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-]{0,127}$")
_ID_NAME = re.compile(r"(^|_)id$|[a-z]Id$|ID$")
_OPTIONS = {
    "numeric": (),
    "categorical": ("encoding", "embedding_dim", "max_tokens"),
    "hashed": ("num_bins", "embedding_dim"),
    "text": ("max_tokens", "sequence_length", "embedding_dim"),
    "list": ("max_tokens", "sequence_length", "embedding_dim", "pooling"),
}


@dataclasses.dataclass(frozen=True)
class ColumnType:
    """How the model reads one column.

    Attributes:
        kind: one of `KINDS`.
        dtype: the model input's dtype: `float32`, `int64` or `string`.
        cardinality: distinct values (tokens for text and lists) in the data it was inferred from.
        encoding: `categorical` only: `one_hot` or `embedding`.
        num_bins: `hashed` only.
        max_tokens, sequence_length: vocabulary size and padded length (`text`, `list`).
        embedding_dim: None for the trunk's rule (see `keras_mtl.preprocessing`).
        pooling: `list` only: `mean` or `sum`.
        why: the reason, for the summary.
    """

    kind: str
    dtype: str
    cardinality: int | None = None
    encoding: str | None = None
    num_bins: int | None = None
    max_tokens: int | None = None
    sequence_length: int | None = None
    embedding_dim: int | None = None
    pooling: str | None = None
    why: str = ""


def infer_types(
    frame: pd.DataFrame,
    columns=None,
    overrides: typing.Mapping[str, typing.Any] | None = None,
) -> dict[str, ColumnType]:
    """The `ColumnType` of every feature column of `frame` (in `columns` order; default all).

    `overrides` maps a column to a kind (`"hashed"`), a dict of the kind and
    its options, or `"drop"`; the other columns are inferred.

    Example:
    >>> df = pd.DataFrame({"age": [31.0, 45.0, 27.0], "city": ["Oslo", "Lima", "Oslo"]})
    >>> {c: t.kind for c, t in infer_types(df).items()}
    {'age': 'numeric', 'city': 'categorical'}
    >>> infer_types(df, overrides={"city": "hashed"})["city"].num_bins
    1024
    """
    overrides = dict(overrides or {})
    columns = list(frame.columns if columns is None else columns)
    unknown = sorted(set(overrides) - set(frame.columns))
    if unknown:
        raise ValueError(
            f"features names column(s) {unknown} that the table does not have; its columns are "
            f"{list(frame.columns)}."
        )
    types = {}
    for name in columns:
        if name not in frame.columns:
            raise ValueError(f"No column {name!r}; the table has {list(frame.columns)}.")
        if not isinstance(name, str) or not _INPUT_NAME.match(name):
            raise ValueError(
                f"Column {name!r} cannot name a model input (it becomes a Keras input, a TensorFlow op and "
                "a serving input key: letters, digits, '_', '-' and '.', not starting with '_' or '-'); "
                f"rename it first, e.g. df.rename(columns={{{name!r}: {_suggest(name)!r}}})."
            )
        spec = overrides.get(name)
        if spec == "drop":
            continue
        column_type = _infer(frame[name], name) if spec is None else _override(frame[name], name, spec)
        if column_type is not None:
            types[name] = column_type
    if not types:
        raise ValueError("No feature columns are left: every column is a label, dropped, or constant.")
    return types


def _suggest(name) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "_", str(name)).strip("_-")
    return cleaned or "column"


def summary(types: typing.Mapping[str, ColumnType], dropped: typing.Mapping[str, str] | None = None) -> str:
    """A table of the column types, for the user to read and override.

    Example:
    >>> print(summary({"age": ColumnType("numeric", "float32", 60, why="float values")}))
    column  kind     dtype    values  encoding    why
    age     numeric  float32  60      normalized  float values
    """
    rows = [("column", "kind", "dtype", "values", "encoding", "why")]
    for name, t in types.items():
        rows.append((name, t.kind, t.dtype, "" if t.cardinality is None else str(t.cardinality), _encoding(t), t.why))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _encoding(t: ColumnType) -> str:
    if t.kind == "numeric":
        return "normalized"
    if t.kind == "categorical":
        return t.encoding
    if t.kind == "hashed":
        return f"hash {t.num_bins} + embedding"
    pooling = t.pooling or "mean"
    return f"{t.sequence_length} tokens, {pooling}-pooled"


# ----------------------------------------------------------------- inference
def _infer(column: pd.Series, name: str) -> ColumnType | None:
    present = column.dropna()
    if len(present) == 0:
        return None  # every value missing: nothing to learn from
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        raise ValueError(
            f"Column {name!r} holds dates/times ({column.dtype}); convert it to numbers first "
            f"(e.g. df[{name!r}].astype('int64') // 10**9 for seconds), or drop it with "
            f"features={{{name!r}: 'drop'}}."
        )
    if pd.api.types.is_bool_dtype(column.dtype):
        return ColumnType("categorical", "int64", int(present.nunique()), "one_hot", why="booleans")
    if pd.api.types.is_numeric_dtype(column.dtype):
        if pd.api.types.is_integer_dtype(column.dtype) and _ID_NAME.search(name):
            return _identifier(int(present.nunique()), "int64", "integers named like an id")
        return _numeric(column, name, "float values" if pd.api.types.is_float_dtype(column.dtype) else "integers")
    if _is_list_column(present):
        return _list_type(column, name, "lists of values")
    # Each distinct value once, with how often it occurs: tables repeat values.
    counts = present.astype(str).value_counts(sort=False)
    values, weights = counts.index.to_series(), counts.to_numpy()
    parsed = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    if parsed.all():
        # Every value is a number written as a string (zip codes, codes with
        # leading zeros): a pandas reader would have made it numeric otherwise.
        return _categorical(len(counts), "string", "numbers stored as strings: read as codes")
    share = float(weights[parsed].sum() / weights.sum())
    if share >= 0.9:
        odd = set(values[~parsed])
        row = next(i for i, v in zip(present.index, present.astype(str)) if v in odd)
        raise ValueError(
            f"Column {name!r} is ambiguous: {share:.0%} of its values are numbers but row {row} "
            f"holds {column[row]!r}. Clean it (e.g. pd.to_numeric(df[{name!r}], errors='coerce') and "
            f"fill the gaps) or say how to read it: features={{{name!r}: 'categorical'}}."
        )
    if _ID_NAME.search(name):
        return _identifier(len(counts), "string", "strings named like an id")
    if len(counts) > ONE_HOT_MAX:
        words = float(np.average(values.str.split().str.len().to_numpy(), weights=weights))
        if words >= TEXT_MIN_WORDS:
            return _text_type(present.astype(str), f"about {words:.0f} words per value")
    return _categorical(len(counts), "string", "strings")


def _numeric(column: pd.Series, name: str, why: str) -> ColumnType:
    missing = column.isna().to_numpy()
    if missing.any():
        row = column.index[missing][0]
        raise ValueError(
            f"Numeric column {name!r} has {int(missing.sum())} missing value(s) (first at row {row}); "
            f"features have no missing marker. Fill them (e.g. df[{name!r}].fillna(df[{name!r}].median())) "
            f"or read the column as categories: features={{{name!r}: 'categorical'}}."
        )
    values = column.to_numpy(np.float64)
    if not np.isfinite(values).all():
        row = column.index[~np.isfinite(values)][0]
        raise ValueError(f"Numeric column {name!r} holds {column[row]!r} at row {row}; features must be finite.")
    return ColumnType("numeric", "float32", int(column.nunique()), why=why)


def _categorical(distinct: int, dtype: str, why: str) -> ColumnType:
    if distinct > CATEGORICAL_MAX:
        return _hashed(distinct, dtype, f"{why}; more than {CATEGORICAL_MAX:,} values")
    encoding = "one_hot" if distinct <= ONE_HOT_MAX else "embedding"
    return ColumnType("categorical", dtype, distinct, encoding, why=why)


def _identifier(distinct: int, dtype: str, why: str) -> ColumnType:
    # New ids keep arriving after training: hash them rather than keep a
    # vocabulary that sends every unseen id to one OOV slot.
    if distinct <= ONE_HOT_MAX:
        return ColumnType("categorical", dtype, distinct, "one_hot", why=why)
    return _hashed(distinct, dtype, why)


def _hashed(distinct: int, dtype: str, why: str, num_bins: int | None = None, embedding_dim=None) -> ColumnType:
    if num_bins is None:
        num_bins = min(MAX_BINS, max(MIN_BINS, 2 ** math.ceil(math.log2(max(2 * distinct, 2)))))
    if embedding_dim is None:
        from keras_mtl.preprocessing import default_embedding_dim

        embedding_dim = min(HASHED_MAX_DIM, default_embedding_dim(num_bins))
    return ColumnType("hashed", dtype, distinct, num_bins=int(num_bins), embedding_dim=embedding_dim, why=why)


def _text_type(strings: pd.Series, why: str, **options) -> ColumnType:
    words = strings.str.split().str.len()
    tokens = int(strings.str.lower().str.split().explode().nunique())
    length = options.get("sequence_length") or int(min(256, max(8, np.percentile(words, 95))))
    return ColumnType(
        "text", "string", tokens,
        max_tokens=options.get("max_tokens") or min(20_000, tokens + 2),
        sequence_length=length, embedding_dim=options.get("embedding_dim"), why=why,
    )


def _list_type(column: pd.Series, name: str, why: str, **options) -> ColumnType:
    cells = [c for c in column.dropna() if not _is_missing(c)]
    if cells and not all(isinstance(c, (list, tuple, np.ndarray)) for c in cells):
        joined = column.fillna("").astype(str)
        lengths = joined.str.split().str.len()
        tokens = int(joined.str.split().explode().dropna().nunique())
    else:
        lengths = pd.Series([len(c) for c in cells] or [1])
        tokens = len({str(v) for c in cells for v in c})
    length = options.get("sequence_length") or int(min(64, max(1, lengths.max())))
    return ColumnType(
        "list", "string", tokens,
        max_tokens=options.get("max_tokens") or min(100_000, tokens + 2),
        sequence_length=length, embedding_dim=options.get("embedding_dim"),
        pooling=options.get("pooling") or "mean", why=why,
    )


def _override(column: pd.Series, name: str, spec) -> ColumnType:
    options = dict(spec) if isinstance(spec, typing.Mapping) else {"kind": spec}
    kind = options.pop("kind", None)
    if kind not in KINDS:
        raise ValueError(
            f"features[{name!r}]: unknown kind {kind!r}; use one of {list(KINDS)} or 'drop'."
        )
    extra = sorted(set(options) - set(_OPTIONS[kind]))
    if extra:
        raise ValueError(
            f"features[{name!r}]: {kind!r} takes {list(_OPTIONS[kind]) or 'no options'}, not {extra}."
        )
    for key in ("num_bins", "max_tokens", "sequence_length", "embedding_dim"):
        if key in options and (not isinstance(options[key], int) or options[key] < 1):
            raise ValueError(f"features[{name!r}].{key} must be a positive integer, got {options[key]!r}.")
    why = "set by you"
    present = column.dropna()
    if kind == "numeric":
        if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            numbers = pd.to_numeric(present, errors="coerce")
            if numbers.isna().any():
                row = numbers.index[numbers.isna().to_numpy()][0]
                raise ValueError(
                    f"features[{name!r}] is 'numeric' but row {row} holds {column[row]!r}, which is not a number."
                )
        return _numeric(pd.to_numeric(column), name, why)
    dtype = "int64" if pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype) else "string"
    if kind == "categorical":
        encoding = options.get("encoding")
        if encoding not in (None, "one_hot", "embedding"):
            raise ValueError(f"features[{name!r}].encoding must be 'one_hot' or 'embedding', got {encoding!r}.")
        values = present if dtype == "int64" else present.astype(str)
        t = _categorical(int(values.nunique()), dtype, why)
        if t.kind == "hashed":  # asked for a vocabulary: keep one, capped if asked
            t = ColumnType("categorical", dtype, t.cardinality, "embedding", why=why)
        return dataclasses.replace(
            t,
            encoding=encoding or t.encoding,
            embedding_dim=options.get("embedding_dim"),
            max_tokens=options.get("max_tokens"),
        )
    if kind == "hashed":
        return _hashed(int(present.nunique()), dtype, why, options.get("num_bins"), options.get("embedding_dim"))
    if kind == "text":
        return _text_type(column.fillna("").astype(str), why, **options)
    return _list_type(column, name, why, **options)


def _is_list_column(present: pd.Series) -> bool:
    return isinstance(present.iloc[0], (list, tuple, np.ndarray))


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


# ------------------------------------------------------------------- values
def feature_values(column: pd.Series, t: ColumnType, name: str) -> np.ndarray:
    """A column as the (n, 1) array the model input of type `t` takes.

    Missing strings become ''; list cells become one whitespace-separated
    string (spaces inside a value become '_').

    Example:
    >>> feature_values(pd.Series([["a b", "c"], None]), ColumnType("list", "string"), "tags").tolist()
    [['a_b c'], ['']]
    """
    if t.dtype == "float32":
        values = pd.to_numeric(column, errors="coerce").to_numpy(np.float32)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"Numeric column {name!r} has {int(bad.sum())} missing or non-numeric value(s) "
                f"(first: {column.iloc[row]!r} at row {row}); fill them first."
            )
    elif t.dtype == "int64":
        if column.isna().any():
            row = int(np.argmax(column.isna().to_numpy()))
            raise ValueError(f"Integer column {name!r} has a missing value at row {row}; fill it first.")
        values = column.to_numpy(np.int64)
    elif t.kind == "list":
        values = np.array([_join(c) for c in column], dtype=object)
    else:
        values = column.astype(object).where(column.notna(), "").astype(str).to_numpy(dtype=object)
    return values.reshape(-1, 1)


def _join(cell) -> str:
    if _is_missing(cell):
        return ""
    if isinstance(cell, str):
        return cell
    return " ".join(str(v).replace(" ", "_") for v in cell)


def feature_space(types: typing.Mapping[str, ColumnType]):
    """An un-adapted `keras_mtl.preprocessing.FeatureSpace` reading every column as its type says.

    One-hot and numeric columns alone give a "concat" space (what
    `trunks.tabular` has always taken); any embedded column makes it a
    "dict" space, whose embeddings `trunks.tabular` adds.

    Example:
    >>> fs = feature_space({"age": ColumnType("numeric", "float32"), "zip": ColumnType("hashed", "string", num_bins=64)})
    >>> fs.output_mode
    'dict'
    """
    import keras

    from keras_mtl.preprocessing import FeatureSpace as FS

    specs = {}
    for name, t in types.items():
        if t.kind == "numeric":
            specs[name] = FS.float_normalized(name=name)
        elif t.kind == "categorical" and t.encoding == "one_hot":
            lookup = keras.layers.StringLookup if t.dtype == "string" else keras.layers.IntegerLookup
            specs[name] = FS.feature(
                dtype=t.dtype,
                preprocessor=lookup(num_oov_indices=1, max_tokens=t.max_tokens, name=f"{name}_preprocessor"),
                output_mode="one_hot",
            )
        elif t.kind == "categorical":
            specs[name] = FS.embedded_categorical(
                dtype=t.dtype, max_tokens=t.max_tokens, embedding_dim=t.embedding_dim, name=name
            )
        elif t.kind == "hashed":
            specs[name] = FS.hashed(t.num_bins, dtype=t.dtype, embedding_dim=t.embedding_dim, name=name)
        elif t.kind == "text":
            specs[name] = FS.text(
                max_tokens=t.max_tokens, sequence_length=t.sequence_length, embedding_dim=t.embedding_dim, name=name
            )
        else:
            specs[name] = FS.token_list(
                max_tokens=t.max_tokens, sequence_length=t.sequence_length,
                embedding_dim=t.embedding_dim, pooling=t.pooling, name=name,
            )
    embedded = any(t.kind != "numeric" and not (t.kind == "categorical" and t.encoding == "one_hot") for t in types.values())
    return FS(specs, output_mode="dict" if embedded else "concat")


__all__ = ["KINDS", "ColumnType", "feature_space", "feature_values", "infer_types", "summary"]
