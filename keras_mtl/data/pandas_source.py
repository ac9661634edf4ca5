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
    needed = list(columns.values()) + [t.label for t in tasks]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise KeyError(f"from_pandas: no column(s) {missing}; the DataFrame has {list(df.columns)}.")
    x = {name: feature_array(df[col], name) for name, col in columns.items()}
    y = {}
    for t in tasks:
        if t.label not in y:
            y[t.label] = label_array(df[t.label], t)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(df), seed=seed, reshuffle_each_iteration=True)
    return ds


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
    return column.astype(str).to_numpy(dtype=object)


def label_array(column: pd.Series, task: Task) -> np.ndarray:
    """A label column as the task's label array, with its missing marker where the value is missing.

    Example:
    >>> from keras_mtl.tasks import Multiclass
    >>> label_array(pd.Series([2, None, 0]), Multiclass("topic", 3)).tolist()
    [2, -1, 0]
    """
    name = f"Label {task.label!r} (task {task.name!r})"
    if isinstance(task, (Multilabel, Tagging)) or (isinstance(task, Regression) and task.units > 1):
        width = task.units if not isinstance(task, Tagging) else None
        if isinstance(task, Tagging):
            return _stack(column, name, width, np.int64, fill=-1)
        return _stack(column, name, width, np.float32, fill=np.nan)
    if isinstance(task, Multiclass):
        if isinstance(column.dtype, pd.CategoricalDtype):
            if len(column.cat.categories) > task.num_classes:
                raise ValueError(
                    f"{name} has {len(column.cat.categories)} categories but the task has "
                    f"{task.num_classes} classes."
                )
            return column.cat.codes.to_numpy(np.int64)  # NaN has code -1
        values = _numbers(column, name).astype(np.float64)
        present = ~np.isnan(values)
        bad = present & ((values != np.round(values)) | (values < 0) | (values >= task.num_classes))
        if bad.any():
            raise ValueError(
                f"{name} must hold class ids 0..{task.num_classes - 1} (or be a pd.Categorical); "
                f"got {column[bad].iloc[0]!r}."
            )
        return np.where(present, values, -1).astype(np.int64)
    values = _numbers(column, name).astype(np.float32)
    if isinstance(task, Binary):
        present = ~np.isnan(values)
        if not np.isin(values[present], (0.0, 1.0)).all():
            raise ValueError(f"{name} must be 0/1 (or bool), with NaN/None for missing.")
    return values


def _numbers(column: pd.Series, name: str) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)
        or column.isna().all()
    ):
        try:
            return pd.to_numeric(column).to_numpy(np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} is not numeric (dtype {column.dtype}); map names to ids first, e.g. "
                "pd.Categorical(df[col], categories=[...]) for a Multiclass task."
            ) from None
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


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
