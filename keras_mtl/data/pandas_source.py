"""`from_pandas`: a DataFrame as a mixture source, missing labels as the tasks' markers."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl.tasks import Binary, Multiclass, Multilabel, Regression, Tagging, Task, check_unique


def from_pandas(
    df: pd.DataFrame,
    tasks: Sequence[Task],
    features: Sequence[str] | Mapping[str, str],
    *,
    shuffle: bool = True,
    seed: int | None = None,
) -> tf.data.Dataset:
    """An unbatched `(features, labels)` dataset from a DataFrame, ready for `mixture()`.

    Each task's labels come from the column named after its label key; a
    missing value (NaN, None, pd.NA) becomes the task's missing marker.

    | task       | column                                  | label            |
    |------------|-----------------------------------------|------------------|
    | Binary     | 0/1, bool or nullable                   | float32, NaN     |
    | Multiclass | class ids, or pd.Categorical (codes)    | int64, -1        |
    | Regression | numbers (units=1) or arrays per row     | float32, NaN     |
    | Multilabel | multi-hot arrays per row (None: none)   | float32, NaN     |
    | Tagging    | tag-id arrays of equal length per row   | int64, -1        |

    Feature columns: floats become float32, integers and booleans int64,
    text and categories strings; array-valued cells are stacked. Features
    may not have missing values except NaN in float columns.

    Args:
        df: one row per example.
        tasks: the tasks this frame labels.
        features: column names, or `{feature name: column}`.
        shuffle: shuffle the rows, anew on every pass.
        seed: shuffle seed.

    Example:
    >>> import keras_mtl as mtl
    >>> df = pd.DataFrame({"text": ["good", "bad", "meh"], "stars": [5.0, 1.0, None]})
    >>> ds = from_pandas(df, [mtl.tasks.Regression("stars")], ["text"], shuffle=False)
    >>> [float(y["stars"]) for _, y in ds]
    [5.0, 1.0, nan]
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_pandas needs a pandas DataFrame, got {type(df).__name__}.")
    if len(df) == 0:
        raise ValueError("from_pandas: the DataFrame has no rows.")
    tasks = check_unique(tasks)
    columns = dict(features) if isinstance(features, Mapping) else {c: c for c in features}
    if not columns:
        raise ValueError("from_pandas: give at least one feature column.")
    needed = list(columns.values()) + label_columns(tasks)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise KeyError(f"from_pandas: no column(s) {missing}; the DataFrame has {list(df.columns)}.")
    x = {name: feature_array(df[col], name) for name, col in columns.items()}
    ds = tf.data.Dataset.from_tensor_slices((x, label_arrays(df, tasks)))
    if shuffle:
        ds = ds.shuffle(len(df), seed=seed, reshuffle_each_iteration=True)
    return ds


def label_columns(tasks: Sequence[Task]) -> list[str]:
    """The columns the tasks read besides features: each label key, and each Ranking task's group key.

    Example:
    >>> from keras_mtl.tasks import Binary, Ranking
    >>> label_columns([Binary("click"), Ranking("relevance", group="query"), Binary("buy", label="click")])
    ['click', 'relevance', 'query']
    """
    keys = []
    for t in tasks:
        keys += [t.label] + ([t.group] if t.group is not None else [])
    return list(dict.fromkeys(keys))


def label_arrays(df: pd.DataFrame, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
    """`{key: array}` for every label and group column of the tasks (see `label_array`, `group_array`)."""
    y = {}
    for t in tasks:
        if t.label not in y:
            y[t.label] = label_array(df[t.label], t)
        if t.group is not None and t.group not in y:
            y[t.group] = group_array(df[t.group], t)
    return y


def group_array(column: pd.Series, task: Task) -> np.ndarray:
    """A Ranking task's group ids (query, user) as int64: whole numbers as they are, other
    values hashed (numeric labels keep the training step XLA-compilable).

    Example:
    >>> from keras_mtl.tasks import Ranking
    >>> group_array(pd.Series([3, 3, 5]), Ranking("r", group="q")).tolist()
    [3, 3, 5]
    >>> ids = group_array(pd.Series(["q1", "q1", "q2"]), Ranking("r", group="q"))
    >>> ids.dtype, bool(ids[0] == ids[1] != ids[2])
    (dtype('int64'), True)
    """
    if column.isna().any():
        row = int(np.argmax(column.isna().to_numpy()))
        raise ValueError(
            f"Group {task.group!r} (task {task.name!r}) has a missing id at row {row}; every example "
            "needs the id of its group (query, user)."
        )
    if pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(np.int64)
    return pd.util.hash_array(column.astype(str).to_numpy(dtype=object)).view(np.int64)


def feature_array(column: pd.Series, name: str) -> np.ndarray:
    """A feature column as a numpy array of a dtype Keras inputs take.

    Example:
    >>> feature_array(pd.Series([1, 2]), "n").dtype
    dtype('int64')
    """
    if _is_array_column(column):
        return _stack(column, name, None, np.float32 if _numeric_cells(column) == "float" else None)
    if pd.api.types.is_float_dtype(column.dtype):
        return column.to_numpy(np.float32)  # NaN is a value here, left to the model
    if column.isna().any():
        raise ValueError(
            f"Feature {name!r} has {int(column.isna().sum())} missing value(s); fill them "
            "first (e.g. df[col].fillna('') for text, a sentinel for integers)."
        )
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(np.int64)
    _refuse_mixed_cells(column, name)
    return column.astype(str).to_numpy(dtype=object)


def _refuse_mixed_cells(column: pd.Series, name: str) -> None:
    """A column of numbers and strings (a float column with one typo) would silently become text."""
    if column.dtype != object:
        return
    is_str = column.map(lambda v: isinstance(v, (str, bytes))).to_numpy(bool)
    if is_str.all() or not is_str.any():
        return
    is_number = column.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool)).to_numpy(bool)
    if not is_number.any():
        return
    odd = is_str if is_str.sum() <= is_number.sum() else is_number  # the first cell of the rarer kind
    row = column.index[int(np.argmax(odd))]
    raise ValueError(
        f"Feature {name!r} mixes numbers and strings ({int(is_number.sum())} numbers, {int(is_str.sum())} "
        f"strings): row {row} holds {column[row]!r}. Clean the column (e.g. "
        f"pd.to_numeric(df[{name!r}], errors='coerce')) or, if it holds codes, make it all strings "
        f"(df[{name!r}].astype(str))."
    )


def label_array(column: pd.Series, task: Task) -> np.ndarray:
    """A label column as the task's label array, with its missing marker where the value is missing.

    Missing is NaN, None, pd.NA or an empty (blank) string, for every task,
    and -1 for every task but Regression (where -1 is a value); in array
    cells (Multilabel, Tagging, Regression with units > 1) per element.
    Binary, Multilabel and Regression labels come back float32 with NaN,
    Multiclass and Tagging int64 with -1.

    Example:
    >>> from keras_mtl.tasks import Binary, Multiclass
    >>> label_array(pd.Series([2, None, 0, -1]), Multiclass("topic", 3)).tolist()
    [2, -1, 0, -1]
    >>> label_array(pd.Series(["1", "", "0", "-1"]), Binary("click")).tolist()
    [1.0, nan, 0.0, nan]
    """
    name = f"Label {task.label!r} (task {task.name!r})"
    if isinstance(task, (Multilabel, Tagging)) or (isinstance(task, Regression) and task.units > 1):
        values = _label_rows(column, name, None if isinstance(task, Tagging) else task.units)
        if isinstance(task, Regression):
            return values.astype(np.float32)
        present = ~np.isnan(values) & (values != -1)
        if isinstance(task, Tagging):
            _check_ids(values, present, name, task.num_tags, "tag ids")
            return np.where(present, values, -1).astype(np.int64)
        _check_binary(values, present, name, "multi-hot values in [0, 1]", soft=True)
        return np.where(present, values, np.nan).astype(np.float32)
    if isinstance(task, Multiclass):
        if isinstance(column.dtype, pd.CategoricalDtype):
            # Categories that are missing markers ("", -1) mean missing, not a class.
            markers = [c for c in column.cat.categories if _is_missing_marker(c)]
            if markers:
                column = column.cat.remove_categories(markers)
            if len(column.cat.categories) > task.num_classes:
                raise ValueError(
                    f"{name} has {len(column.cat.categories)} categories but the task has "
                    f"{task.num_classes} classes."
                )
            return column.cat.codes.to_numpy(np.int64)  # NaN has code -1
        values = _numbers(column, name)
        present = ~np.isnan(values) & (values != -1)
        _check_ids(values, present, name, task.num_classes, "class ids", " (or be a pd.Categorical)")
        return np.where(present, values, -1).astype(np.int64)
    values = _numbers(column, name)
    if isinstance(task, Binary):
        present = ~np.isnan(values) & (values != -1)
        _check_binary(values, present, name, "0/1 (or bool)")
        values = np.where(present, values, np.nan)
    return values.astype(np.float32)


def _numbers(column: pd.Series, name: str) -> np.ndarray:
    """A one-value-per-row label column as float64, NaN where missing (NaN, None, pd.NA, blank string)."""
    if isinstance(column.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
        or column.isna().all()
    ):
        cells = column.astype(object)
        numbers = pd.to_numeric(cells, errors="coerce")
        failed = (numbers.isna() & cells.notna()).to_numpy()
        # Only the cells that did not parse are looked at one by one: blank ones are missing.
        bad = failed.copy()
        bad[failed] = ~cells[failed].map(_is_blank).to_numpy(bool)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"{name} is not numeric: {cells.iloc[row]!r} at row {row} (dtype {column.dtype}); map "
                "names to ids first, e.g. pd.Categorical(df[col], categories=[...]) for a Multiclass task."
            )
        return numbers.to_numpy(np.float64, na_value=np.nan)
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _label_rows(column: pd.Series, name: str, width: int | None) -> np.ndarray:
    """Array-valued label cells stacked as float64; a missing cell, or element, becomes NaN."""
    rows = [None if _is_missing_cell(cell) else _label_row(cell, name, i) for i, cell in enumerate(column)]
    present = [r for r in rows if r is not None]
    if not present and width is None:
        raise ValueError(f"{name}: every value is missing, so its shape is unknown.")
    length = width if width is not None else len(present[0])
    for i, r in enumerate(rows):
        if r is not None and len(r) != length:
            raise ValueError(
                f"{name}: the value at row {i} has length {len(r)}, expected {length}"
                + (" (pad them to one length)." if width is None else ".")
            )
    out = np.full((len(rows), length), np.nan)
    for i, r in enumerate(rows):
        if r is not None:
            out[i] = r
    return out


def _label_row(cell, name: str, row: int) -> np.ndarray:
    try:  # the common case: a list or array of numbers (NaN included)
        values = np.asarray(cell, dtype=np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim != 1:
        items = list(np.asarray(cell, dtype=object).ravel()) if values is None else []
        if values is not None or not items:
            raise ValueError(f"{name}: the value at row {row} must be a flat list of numbers, got {cell!r}.")
        values = np.empty(len(items))
        for j, item in enumerate(items):
            if _is_missing_cell(item):
                values[j] = np.nan
                continue
            try:
                values[j] = float(item)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: {item!r} at row {row}, position {j} is not a number.") from None
    return values


def _check_ids(values, present, name: str, n: int, what: str, alternative: str = "") -> None:
    bad = present & ((values != np.round(values)) | (values < 0) | (values >= n))
    if bad.any():
        at = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} must hold {what} 0..{n - 1}{alternative}, with -1 or an empty value for missing; "
            f"got {values[tuple(at)].item():g} at row {at[0]}."
        )


def _check_binary(values, present, name: str, what: str, soft: bool = False) -> None:
    # `soft`: probabilities too, as the model's own label check allows for Multilabel.
    bad = present & (((values < 0) | (values > 1)) if soft else ((values != 0) & (values != 1)))
    if bad.any():
        at = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} must be {what}, with -1, NaN, None or an empty value for missing; "
            f"got {values[tuple(at)].item():g} at row {at[0]}."
        )


def _is_blank(value) -> bool:
    return isinstance(value, str) and not value.strip()


def _is_missing_cell(value) -> bool:
    if value is None or value is pd.NA or _is_blank(value):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _is_missing_marker(value) -> bool:
    if _is_missing_cell(value):
        return True
    try:
        return float(value) == -1
    except (TypeError, ValueError):
        return False


def _is_array_column(column: pd.Series) -> bool:
    first = column.dropna()
    return len(first) > 0 and isinstance(first.iloc[0], (list, tuple, np.ndarray))


def _numeric_cells(column: pd.Series) -> str:
    first = np.asarray(column.dropna().iloc[0])
    return "float" if first.dtype.kind == "f" else "other"


def _stack(column: pd.Series, name: str, width, dtype, fill=None) -> np.ndarray:
    """Stacks array-valued cells; a missing cell becomes a row of `fill`."""
    rows = list(column)
    present = [np.asarray(r) for r in rows if r is not None and not _is_nan(r)]
    if not present:
        if width is None or fill is None:
            raise ValueError(f"{name}: every value is missing, so its shape is unknown.")
        return np.full((len(rows), width), fill, dtype=dtype)
    shape = present[0].shape
    if width is not None and shape != (width,):
        raise ValueError(f"{name}: each value must have length {width}, got shape {shape}.")
    if any(p.shape != shape for p in present):
        raise ValueError(f"{name}: values have different shapes; pad them to one length.")
    if fill is None and len(present) != len(rows):
        raise ValueError(f"{name} has missing values; fill them first.")
    out = []
    for r in rows:
        out.append(np.full(shape, fill) if r is None or _is_nan(r) else np.asarray(r))
    stacked = np.stack(out)
    return stacked.astype(dtype) if dtype is not None else stacked


def _is_nan(value) -> bool:
    return isinstance(value, float) and np.isnan(value) or value is pd.NA
