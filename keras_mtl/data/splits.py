"""Deterministic splits of in-memory columns, and the batched datasets the loaders return."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from keras_mtl.data.pipeline import from_columns

Columns = Mapping[str, np.ndarray]


def holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices `(kept, held_out)`: a seeded permutation, `round(n * fraction)` held out (at least 1).

    The same `n`, `fraction` and `seed` always give the same split.

    Example:
    >>> kept, held = holdout(10, 0.2, seed=0)
    >>> len(kept), len(held), sorted(np.concatenate([kept, held]).tolist()) == list(range(10))
    (8, 2, True)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"The held-out fraction must be in (0, 1), got {fraction}.")
    if n < 2:
        raise ValueError(f"Cannot split {n} row(s) in two.")
    order = np.random.default_rng(seed).permutation(n)
    n_held = min(n - 1, max(1, int(round(n * fraction))))
    return order[n_held:], order[:n_held]


def take(columns: Columns, index: np.ndarray) -> dict[str, np.ndarray]:
    """The rows `index` of every column.

    Example:
    >>> take({"x": np.arange(5)}, np.array([4, 0]))["x"].tolist()
    [4, 0]
    """
    return {k: v[index] for k, v in columns.items()}


def with_validation(
    train: tuple[Columns, Columns], test: tuple[Columns, Columns], fraction: float, seed: int
) -> dict[str, tuple[dict, dict]]:
    """`{"train", "validation", "test"}` columns: a seeded `fraction` of the train rows held out
    for validation, the test rows as they are.

    Example:
    >>> cols = with_validation(({"x": np.arange(10)}, {"y": np.arange(10)}), ({"x": np.arange(3)}, {"y": np.arange(3)}), 0.2, 0)
    >>> {k: len(v[0]["x"]) for k, v in cols.items()}
    {'train': 8, 'validation': 2, 'test': 3}
    """
    features, labels = train
    kept, held = holdout(len(next(iter(labels.values()))), fraction, seed)
    return {
        "train": (take(features, kept), take(labels, kept)),
        "validation": (take(features, held), take(labels, held)),
        "test": (dict(test[0]), dict(test[1])),
    }


def subset(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """`limit` row indices out of `n`, a fixed random subset (all rows, in order, for None).

    For files ordered by class or time, where the first rows would not be
    representative.

    Example:
    >>> subset(5, None).tolist(), len(subset(100, 7))
    ([0, 1, 2, 3, 4], 7)
    """
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}.")
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def batched_splits(
    splits: Mapping[str, tuple[Columns, Columns]], batch_size: int, seed: int, group: str | None = None
) -> dict[str, tf.data.Dataset]:
    """`{split: dataset}` of `(features, labels)` batches; only "train" is shuffled (every epoch),
    by whole groups of the label key `group` when given (see `from_columns`).

    Example:
    >>> ds = batched_splits({"train": ({"x": np.arange(4)}, {"y": np.arange(4)})}, 2, 0)
    >>> len(ds["train"])
    2
    """
    return {
        name: from_columns(x, y, batch_size=batch_size, shuffle=name == "train", seed=seed, group=group)
        for name, (x, y) in splits.items()
    }
