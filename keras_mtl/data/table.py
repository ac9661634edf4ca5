"""`from_dataframe`: a user's table to `MultiTaskData` in one call, with no hand-written feature spec."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from keras_mtl.data import columns as columns_lib
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.data import pandas_source
from keras_mtl.tasks import Task, check_unique

SPLITS = ("train", "validation", "test")


def from_dataframe(
    frame: pd.DataFrame | Mapping[str, pd.DataFrame],
    tasks: Sequence[Task],
    *,
    features: Sequence[str] | Mapping[str, Any] | None = None,
    split: str | Mapping[str, str] = "random",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    batch_size: int = 1024,
    seed: int = 0,
    name: str = "table",
    echo: Callable[[str], None] | None = print,
) -> MultiTaskData:
    """A table with one label column per task, as `MultiTaskData` ready for the model factories.

    Every column that is not a task's label is a feature, read as its
    inferred type (see `keras_mtl.data.columns`); the summary of the types
    is printed (`echo=None` silences it) so you can override any of them with
    `features=`. The feature space is adapted on the train split only, and
    `data.inputs`, `data.feature_space`, `encoded()` and `sample()` work as
    for the bundled datasets (`trunks.tabular(data.feature_space)` reads it).

    Args:
        frame: one DataFrame to split, or `{"train": df, "validation": df,
            "test": df}` (splits left out are taken from "train" by `split`).
        tasks: the tasks; each reads the column named by its label key.
            Missing labels: -1, NaN, None, pd.NA or an empty cell.
        features: None (every other column), a list of columns, or
            `{column: kind | {"kind": ..., options} | "drop" | None}`: kinds
            for the named columns, every other column inferred.
        split: `"random"` (a seeded shuffle), `{"column": "fold"}` (the
            column's values say "train", "validation" or "test"), or
            `{"time": "date"}` (ordered by the column: the latest rows are
            the test split, those before them validation).
        validation_fraction: share of the rows held out for validation by
            `"random"` and `"time"` splits.
        test_fraction: share of the rows held out for test, the same way.
        batch_size: batch size of all three splits.
        seed: the seed of the split and of the per-epoch shuffle.
        name: the data's name (log and export folders).
        echo: where the column summary goes.

    Example:
    >>> import keras_mtl as mtl
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"hours": rng.normal(40, 9, 300), "city": rng.choice(["Oslo", "Lima"], 300)})
    >>> df["long_week"] = (df.hours > 45).astype(int)
    >>> data = from_dataframe(df, [mtl.tasks.Binary("long_week")], features=["hours", "city"], echo=None)
    >>> sorted(data.inputs), len(data.columns["train"][0]["hours"])
    (['city', 'hours'], 240)
    """
    tasks = check_unique(tasks)
    frames = _split_frames(frame, split, validation_fraction, test_fraction, seed)
    label_columns = pandas_source.label_columns(tasks)
    for split_name, df in frames.items():
        missing = [c for c in label_columns if c not in df.columns]
        if missing:
            owner = next(t for t in tasks if missing[0] in (t.label, t.group))
            what = "label" if owner.label == missing[0] else "group"
            raise ValueError(
                f"No {what} column {missing[0]!r} (task {owner.name!r}) "
                f"in the {split_name} split; its columns are {list(df.columns)}."
            )
    train = frames["train"]
    overrides = {}
    if features is None:
        names = [c for c in train.columns if c not in label_columns and c not in _split_columns(split)]
    elif isinstance(features, Mapping):
        overrides = {k: v for k, v in features.items() if v is not None}
        names = [c for c in train.columns if c not in label_columns and c not in _split_columns(split)]
        names += [c for c in features if c not in names]
    else:
        names = list(features)
    clash = [c for c in names if c in label_columns]
    if clash:
        raise ValueError(f"Column {clash[0]!r} is a task's label; it cannot be a feature too.")
    types = columns_lib.infer_types(train, names, overrides)
    if echo is not None:
        echo(f"Column types of {name!r} ({len(train):,} training rows); override any with features={{column: kind}}:")
        echo(columns_lib.summary(types))
    splits = {}
    for split_name, df in frames.items():
        absent = [c for c in types if c not in df.columns]
        if absent:
            raise ValueError(
                f"Feature column {absent[0]!r} is missing from the {split_name} split; its columns are "
                f"{list(df.columns)}."
            )
        x = {c: columns_lib.feature_values(df[c], t, c) for c, t in types.items()}
        splits[split_name] = (x, pandas_source.label_arrays(df, tasks))
    space = columns_lib.feature_space(types)
    space.adapt(splits["train"][0])
    data = MultiTaskData.from_splits(
        name,
        dict(space.get_inputs()),
        tasks,
        splits,
        batch_size=batch_size,
        seed=seed,
        feature_space=space,
        column_types=types,
    )
    return data


def _split_columns(split) -> list[str]:
    return [split["column"]] if isinstance(split, Mapping) and "column" in split else []


def _split_frames(frame, split, validation_fraction, test_fraction, seed) -> dict[str, pd.DataFrame]:
    """`{"train", "validation", "test"}` frames, from one frame or those given."""
    if isinstance(frame, pd.DataFrame):
        given = {"train": frame}
    elif isinstance(frame, Mapping):
        unknown = sorted(set(frame) - set(SPLITS))
        if unknown or "train" not in frame:
            raise ValueError(
                f"Give the splits as {{'train': df, 'validation': df, 'test': df}} ('train' required); "
                f"got keys {sorted(frame)}."
            )
        given = dict(frame)
    else:
        raise TypeError(f"from_dataframe needs a pandas DataFrame (or a dict of them), got {type(frame).__name__}.")
    for split_name, df in given.items():
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"The {split_name} split must be a pandas DataFrame, got {type(df).__name__}.")
        if len(df) == 0:
            raise ValueError(f"The {split_name} split has no rows.")
    wanted = [s for s in ("validation", "test") if s not in given]
    if not wanted:
        return {s: given[s].reset_index(drop=True) for s in SPLITS}
    train = given["train"].reset_index(drop=True)
    held = _held_out(train, split, wanted, validation_fraction, test_fraction, seed)
    out = {s: given[s].reset_index(drop=True) for s in given if s != "train"}
    for s, index in held.items():
        out[s] = train.iloc[index].reset_index(drop=True)
    rest = np.setdiff1d(np.arange(len(train)), np.concatenate(list(held.values()))) if held else np.arange(len(train))
    out["train"] = train.iloc[rest].reset_index(drop=True)
    for s in SPLITS:
        if len(out[s]) == 0:
            raise ValueError(f"The {s} split is empty: the table has {len(train)} rows; add rows or change the split.")
    return {s: out[s] for s in SPLITS}


def _held_out(train: pd.DataFrame, split, wanted, validation_fraction, test_fraction, seed) -> dict[str, np.ndarray]:
    n = len(train)
    fractions = {"validation": validation_fraction, "test": test_fraction}
    for s in wanted:
        if not 0.0 < fractions[s] < 1.0:
            raise ValueError(f"{s}_fraction must be in (0, 1), got {fractions[s]}.")
    if isinstance(split, Mapping) and "column" in split:
        column = split["column"]
        if column not in train.columns:
            raise ValueError(f"split: no column {column!r}; the table has {list(train.columns)}.")
        values = train[column].astype(str)
        bad = ~values.isin(SPLITS)
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise ValueError(
                f"split column {column!r} holds {train[column].iloc[row]!r} at row {row}; its values must be "
                f"'train', 'validation' or 'test'."
            )
        return {s: np.flatnonzero(values.to_numpy() == s) for s in wanted}
    if isinstance(split, Mapping) and "time" in split:
        column = split["time"]
        if column not in train.columns:
            raise ValueError(f"split: no column {column!r}; the table has {list(train.columns)}.")
        if train[column].isna().any():
            raise ValueError(f"split column {column!r} has missing values; every row needs a time to be ordered.")
        order = np.argsort(train[column].to_numpy(), kind="stable")
    elif split == "random":
        order = np.random.default_rng(seed).permutation(n)
    else:
        raise ValueError(
            f"split must be 'random', {{'column': COLUMN}} or {{'time': COLUMN}}, got {split!r}."
        )
    # Held-out rows come from the end of the order: the latest for a time split.
    out, end = {}, n
    for s in ("test", "validation"):
        if s in wanted:
            size = max(1, int(round(n * fractions[s])))
            out[s] = np.sort(order[max(0, end - size) : end])
            end -= size
    if end < 1:
        raise ValueError(f"Cannot hold out validation and test rows from {n} row(s).")
    return out
