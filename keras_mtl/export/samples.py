"""Sample inputs as a signature takes them: exact dtypes and shapes, or serialized tf.Examples.

Warmup requests, `verify` and the client helpers (`keras_mtl.export.client`)
all send rows through `serving_inputs`, so a value that TF Serving would
reject (a string where a float is expected, a wrong shape, a missing input)
is caught with a `RequestError` naming the input and row, before anything is
written or run, and every value that can be sent exactly is cast to the
signature's dtype (int64 or float64 columns to a float32 input, ...).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl.export.signatures import EXAMPLES, TF_EXAMPLE


class RequestError(ValueError):
    """Rows that cannot be sent to a signature: a missing input, or a value its dtype or shape cannot take."""


def as_numpy(value) -> np.ndarray:
    """`value` as a numpy array; text becomes an object array of `bytes` (what TF feeds as strings).

    A column of equal-length lists or arrays (a DataFrame column of list
    cells) is stacked into one array with a trailing axis.

    Example:
    >>> as_numpy(["a", "b"]).tolist()
    [b'a', b'b']
    >>> as_numpy(pd.Series([[1, 2], [3, 4]])).shape
    (2, 2)
    """
    array = np.asarray(value)
    if array.dtype == object and array.ndim == 1 and array.size:
        cells = array.tolist()
        if all(isinstance(c, (list, tuple, np.ndarray)) for c in cells):
            try:
                array = np.array(cells)
            except ValueError:  # ragged rows: left as cells; the shape check names the input
                pass
    if array.dtype == object or array.dtype.kind in "US":
        # Object arrays keep every byte; fixed-width numpy bytes would drop
        # trailing NULs (which serialized protos can end with).
        flat = [s.encode() if isinstance(s, str) else s for s in array.ravel().tolist()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        array = out.reshape(array.shape)
    return array


def columns(rows) -> tuple[dict[str, object], np.ndarray | None]:
    """`({name: column}, row labels or None)` of a DataFrame, a dict of columns, or a list of row dicts.

    DataFrame columns come out as numpy arrays with missing values as NaN
    (numbers) or None (text); the row labels are the DataFrame's index, so
    errors name the rows as the caller numbers them.

    Example:
    >>> cols, labels = columns(pd.DataFrame({"age": pd.array([38, None], dtype="Int64")}, index=[10, 11]))
    >>> cols["age"].tolist(), labels.tolist()
    ([38.0, nan], [10, 11])
    >>> columns([{"age": 38, "city": "Oslo"}, {"age": 41}])[0]
    {'age': [38, 41], 'city': ['Oslo', None]}
    """
    if isinstance(rows, pd.DataFrame):
        return {str(name): _series(rows[name]) for name in rows.columns}, rows.index.to_numpy()
    if isinstance(rows, Mapping):
        return dict(rows), None
    if isinstance(rows, Sequence) and not isinstance(rows, (str, bytes)) and all(
        isinstance(row, Mapping) for row in rows
    ):
        names = list(dict.fromkeys(name for row in rows for name in row))
        return {name: [row.get(name) for row in rows] for name in names}, None
    raise RequestError(
        "Rows must be a pandas DataFrame, a dict of columns or a list of row dicts; "
        f"got {type(rows).__name__}."
    )


def _series(column: pd.Series) -> np.ndarray:
    dtype = column.dtype
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            # Nullable Int64/Float64/boolean: NA becomes NaN, which the cast then names.
            if column.hasnans:
                return column.to_numpy(dtype="float64", na_value=np.nan)
            return column.to_numpy(dtype=dtype.numpy_dtype)
        return column.to_numpy(dtype=object, na_value=None)
    return column.to_numpy()


def serving_inputs(
    specs: Mapping[str, tf.TensorSpec], samples, *, ignore_unknown: bool = False
) -> dict[str, np.ndarray]:
    """Checks rows against `specs` and returns them with the exact dtype and rank.

    `samples` is a dict of columns, a DataFrame or a list of row dicts. A
    trailing axis of 1 is dropped where the spec has none (the shape
    `MultiTaskData.sample()` and a model's `(None, 1)` inputs differ by).
    Numbers are cast to the spec's dtype when every value survives it:
    integers and floats to a float input (no NaN or inf: a missing number
    is an error, not a NaN fed to the model), integral values to an integer
    input, integers to a string input as their decimal text. Anything else
    raises a `RequestError` naming the input, the dtype it takes, and the
    value and row that do not fit.

    Args:
        specs: the signature's inputs.
        samples: the rows.
        ignore_unknown: drop columns that are not inputs (a DataFrame's ids
            or labels) instead of refusing them.

    Example:
    >>> specs = {"age": tf.TensorSpec([None], tf.float32, name="age")}
    >>> serving_inputs(specs, {"age": [[30], [40]]})["age"]
    array([30., 40.], dtype=float32)
    >>> serving_inputs(specs, pd.DataFrame({"age": [30, None]}))
    Traceback (most recent call last):
    ...
    keras_mtl.export.samples.RequestError: Input 'age' takes float32; got NaN at row 1 (a missing value? every value must be given).
    """
    given, labels = columns(samples)
    missing = [name for name in specs if name not in given]
    unknown = sorted(set(given) - set(specs))
    if ignore_unknown and missing:
        name = missing[0]
        raise RequestError(
            f"Input {name!r} ({_describe(specs[name])}) is missing"
            + (f" (and {len(missing) - 1} more: {missing[1:]})" if len(missing) > 1 else "")
            + f"; the rows have columns {sorted(given)}."
        )
    if missing or (unknown and not ignore_unknown):
        raise RequestError(
            f"Samples must have exactly the model's inputs {sorted(specs)}; "
            f"missing {sorted(missing)}, unknown {unknown}."
        )
    out, sizes = {}, {}
    for name, spec in specs.items():
        array = _cast(name, spec.dtype, as_numpy(given[name]), labels)
        rank = spec.shape.rank
        if array.ndim == rank + 1 and array.shape[-1] == 1:
            array = array.reshape(array.shape[:-1])
        if array.ndim != rank or not tf.TensorShape(array.shape).is_compatible_with(spec.shape):
            raise RequestError(
                f"Input {name!r} has shape {list(array.shape)}; the signature takes "
                f"{spec.shape.as_list()} (None: any size)"
                + (" (rows of different lengths?)." if array.dtype == object and array.ndim == 1 and rank > 1 else ".")
            )
        out[name], sizes[name] = array, array.shape[0]
    if len(set(sizes.values())) > 1 or 0 in sizes.values():
        raise RequestError(f"Every input needs the same number of rows (at least 1); got {sizes}.")
    return out


def casts(specs: Mapping[str, tf.TensorSpec], samples) -> dict[str, str]:
    """`{input: "given -> sent"}` for each input whose values `serving_inputs` casts to another dtype.

    What a client sending the same columns unconverted (gRPC, or a TF
    SavedModel called in Python) would have to cast itself.

    Example:
    >>> specs = {"age": tf.TensorSpec([None], tf.float32, name="age"), "city": tf.TensorSpec([None], tf.string, name="city")}
    >>> casts(specs, pd.DataFrame({"age": [38, 41], "city": ["Oslo", "Rome"]}))
    {'age': 'int64 -> float32'}
    """
    given, _ = columns(samples)
    found = {}
    for name, spec in specs.items():
        if name not in given:
            continue
        array = as_numpy(given[name])
        kind = "string" if array.dtype == object else array.dtype.name
        if kind != spec.dtype.name:
            found[name] = f"{kind} -> {spec.dtype.name}"
    return found


def _is_number(text: bytes) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(spec: tf.TensorSpec) -> str:
    return f"{spec.dtype.name}, shape {spec.shape.as_list()}"


def _cast(name: str, dtype: tf.DType, array: np.ndarray, labels=None) -> np.ndarray:
    def row(index) -> str:
        i = int(np.unravel_index(index, array.shape)[0]) if array.ndim else 0
        return f"row {labels[i] if labels is not None and i < len(labels) else i}"

    takes = "strings" if dtype == tf.string else dtype.name

    def refuse(what: str, index: int, note: str = "") -> RequestError:
        value = array.ravel()[index]
        value = value.item() if isinstance(value, np.generic) else value  # 1.5, not np.float64(1.5)
        return RequestError(f"Input {name!r} takes {takes}; got {what} ({value!r}) at {row(index)}{note}.")

    flat = array.ravel()
    if dtype == tf.string:
        if array.dtype.kind in "iu":  # integer codes ("industry_code" 6 -> "6"): exact as text
            return as_numpy(array.astype(str))
        if array.dtype != object:
            raise refuse(f"values of dtype {array.dtype}", 0) if array.size else RequestError(
                f"Input {name!r} takes strings; got values of dtype {array.dtype}."
            )
        out = np.empty(flat.shape, dtype=object)
        for i, value in enumerate(flat.tolist()):
            if isinstance(value, bytes):
                out[i] = value
            elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
                out[i] = str(value).encode()
            elif value is None or (isinstance(value, float) and np.isnan(value)):
                raise RequestError(
                    f"Input {name!r} takes strings; got a missing value ({value!r}) at {row(i)} "
                    "(every value must be given)."
                )
            else:
                raise refuse(f"a {type(value).__name__}", i)
        return out.reshape(array.shape)

    if array.dtype == object:
        # Text, None, or Python numbers mixed with them: only numbers go on.
        values = flat.tolist()
        texts = [i for i, value in enumerate(values) if isinstance(value, bytes)]
        if texts:
            # A CSV reader turns a whole column to text for one bad cell: name that cell.
            i = next((i for i in texts if not _is_number(values[i])), texts[0])
            raise RequestError(f"Input {name!r} takes {dtype.name}; got strings ({values[i]!r}) at {row(i)}.")
        for i, value in enumerate(values):
            if value is None:
                raise RequestError(
                    f"Input {name!r} takes {dtype.name}; got a missing value (None) at {row(i)} "
                    "(every value must be given)."
                )
            if not isinstance(value, (int, float, np.number, bool, np.bool_)):
                raise refuse(f"a {type(value).__name__}", i)
        array = np.array(flat.tolist()).reshape(array.shape)
        flat = array.ravel()
    if array.dtype.kind not in "biuf":
        raise RequestError(
            f"Input {name!r} takes {dtype.name}; got values of dtype {array.dtype}"
            + (f" ({flat[0]!r}) at {row(0)}." if array.size else ".")
        )
    if array.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            value = flat[bad[0]]
            shown, note = ("NaN", " (a missing value? every value must be given)") if np.isnan(value) else (value, "")
            raise RequestError(f"Input {name!r} takes {dtype.name}; got {shown} at {row(bad[0])}{note}.")
    target = dtype.as_numpy_dtype
    if dtype.is_integer or dtype == tf.bool:
        if array.dtype.kind == "f":
            bad = np.flatnonzero(flat != np.round(flat))
            if bad.size:
                raise refuse("non-integer values", int(bad[0]))
        if dtype == tf.bool:
            bad = np.flatnonzero((flat != 0) & (flat != 1))
            if bad.size:
                raise refuse("a value other than 0/1", int(bad[0]), " (a bool input takes True/False or 0/1)")
        else:
            info = np.iinfo(target)
            bad = np.flatnonzero((flat < info.min) | (flat > info.max))
            if bad.size:
                raise refuse(f"a value outside {dtype.name}'s range", int(bad[0]))
    with np.errstate(over="ignore"):  # an overflow to inf is reported below, naming the row
        cast = array.astype(target)
    if dtype.is_floating:
        bad = np.flatnonzero(~np.isfinite(cast.ravel()))
        if bad.size:
            raise refuse(f"a value beyond {dtype.name}'s range", int(bad[0]))
    return cast


def to_examples(specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Serializes rows of checked inputs (from `serving_inputs`) as `tf.Example` protos.

    Returns a 1-D object array of `bytes`, one serialized example per row:
    what `serve_tf_example` takes.

    Example:
    >>> specs = {"x": tf.TensorSpec([None, 2], tf.float32, name="x")}
    >>> ex = to_examples(specs, serving_inputs(specs, {"x": [[1.0, 2.0]]}))
    >>> tf.train.Example.FromString(ex[0]).features.feature["x"].float_list.value[:]
    [1.0, 2.0]
    """
    rows = len(next(iter(inputs.values())))
    serialized = np.empty(rows, dtype=object)
    for i in range(rows):
        feature = {}
        for name, spec in specs.items():
            values = np.asarray(inputs[name][i]).ravel()
            if spec.dtype == tf.string:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values.tolist()))
            elif spec.dtype.is_floating:
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))
            else:
                feature[name] = tf.train.Feature(
                    int64_list=tf.train.Int64List(value=values.astype(np.int64).tolist())
                )
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        serialized[i] = example.SerializeToString()
    return serialized


def signature_inputs(
    signature: str, specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """What `signature` is sent for checked feature rows: the features, or them as tf.Examples.

    Example:
    >>> specs = {"x": tf.TensorSpec([None], tf.int64, name="x")}
    >>> sorted(signature_inputs("serve_tf_example", specs, {"x": np.array([1, 2])}))
    ['examples']
    """
    if signature == TF_EXAMPLE:
        return {EXAMPLES: to_examples(specs, inputs)}
    return dict(inputs)
