"""Eager checks of in-memory columns against the tasks, before any graph is built.

The model checks labels inside the training step too (class ids, 0/1 range),
but there an error arrives wrapped in TensorFlow's "Graph execution error" and
only when the bad batch comes up. Columns are known up front, so they are
checked here once, with the task, the column, the value and its row named.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from keras_mtl._conditions import joint_tasks
from keras_mtl.tasks import Multilabel, Tagging, Task


def check_features(features: Mapping[str, np.ndarray], where: str = "the data") -> None:
    """Refuses NaN or inf in float feature columns: features have no missing marker.

    Example:
    >>> check_features({"x": np.array([1.0, np.inf])}, "split 'train'")
    Traceback (most recent call last):
    ...
    ValueError: Feature 'x' in split 'train' has 1 non-finite value(s) (first: inf at row 1); ...
    """
    for name, column in features.items():
        values = np.asarray(column)
        if values.dtype.kind != "f":
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            index = np.unravel_index(int(np.argmax(bad)), values.shape)
            raise ValueError(
                f"Feature {name!r} in {where} has {int(bad.sum())} non-finite value(s) (first: "
                f"{values[index].item()!r} at row {index[0]}); features have no missing marker, so it "
                "would make every task's loss NaN. Fill or drop those rows first."
            )


def has_labels(task: Task, column) -> bool:
    """Whether `column` holds any label other than the task's missing marker.

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> has_labels(Binary("a"), np.array([-1.0, np.nan])), has_labels(Binary("a"), np.array([-1, 0]))
    (False, True)
    """
    return bool(_present(task, np.asarray(column)).any())


def _present(task: Task, values: np.ndarray) -> np.ndarray:
    """Where `values` hold a real label: not NaN, not the task's missing class id."""
    present = ~np.isnan(values) if values.dtype.kind == "f" else np.ones(values.shape, bool)
    if task.missing_class_id is not None:
        present &= values != task.missing_class_id
    return present


def check_labels(task: Task, column, where: str = "the data", *, require_some: bool = True) -> None:
    """Checks one task's label column: its shape, that real labels are valid, and that there are some.

    The task's missing marker (-1, or NaN for float labels; NaN only for
    Regression) is always allowed.

    Example:
    >>> from keras_mtl.tasks import Multiclass
    >>> check_labels(Multiclass("topic", 5), np.array([0, 4, -1, 7]), "split 'train'")
    Traceback (most recent call last):
    ...
    ValueError: Task 'topic' (label 'topic') in split 'train': class id 7 at row 3 is out of range; valid ids are 0..4 (-1 = missing).
    """
    owner = f"Task {task.name!r} (label {task.label!r}) in {where}"
    values = np.asarray(column)
    if values.dtype.kind not in "biuf":
        raise ValueError(
            f"{owner}: labels must be numbers, got dtype {values.dtype}"
            + ("; map class names to ids first." if task.target_kind == "sparse" else ".")
        )
    if values.ndim == 0:
        raise ValueError(f"{owner}: labels must have one row per example, got a scalar.")
    per_example = values.shape[1:]
    if isinstance(task, Tagging):
        ok = len(per_example) == 1
    elif task.target_kind == "sparse" or task.units == 1:
        ok = int(np.prod(per_example)) == 1
    else:
        ok = int(np.prod(per_example)) == task.units
    if not ok:
        raise ValueError(
            f"{owner}: labels of shape {values.shape} do not fit the task: each example needs "
            f"{task.label_shape_hint()}."
        )
    floats = values.dtype.kind == "f"
    present = _present(task, values)
    if require_some and not present.any():
        raise ValueError(
            f"{owner} has no labels: every value is the missing marker, so the task would never "
            "be trained. Drop the task or add labelled examples."
        )
    real = values[present]
    rows = np.nonzero(present)[0]

    def first(bad: np.ndarray) -> tuple:
        i = int(np.argmax(bad))
        return real[i].item(), int(rows[i])

    if floats and not np.isfinite(real).all():
        value, row = first(~np.isfinite(real))
        missing = "NaN" if task.missing_class_id is None else "-1 or NaN"
        raise ValueError(f"{owner}: label {value} at row {row} is not finite; mark a missing label with {missing}.")
    if task.nonnegative_labels:
        bad = real < 0
        if bad.any():
            value, row = first(bad)
            missing = "NaN" if task.missing_class_id is None else "-1 or NaN"
            raise ValueError(f"{owner}: value {value} at row {row} is negative; values are >= 0 ({missing} = missing).")
    elif task.target_kind == "sparse":
        bad = (real < 0) | (real >= task.units) | (real != np.round(real))
        if bad.any():
            value, row = first(bad)
            what = "tag id" if isinstance(task, Tagging) else "class id"
            raise ValueError(
                f"{owner}: {what} {value} at row {row} is out of range; valid ids are "
                f"0..{task.units - 1} (-1 = missing)."
            )
    elif task.label_range is not None:
        lo, hi = task.label_range
        bad = (real < lo) | (real > hi)
        if bad.any():
            value, row = first(bad)
            kind = "multi-hot values" if isinstance(task, Multilabel) else "labels"
            raise ValueError(
                f"{owner}: label {value} at row {row} is outside [{lo}, {hi}]; {kind} are 0/1 "
                "(or probabilities), with -1 or NaN for missing."
            )


def check_columns(
    features: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    tasks: Sequence[Task],
    where: str = "the data",
    *,
    require_labels: bool = True,
) -> None:
    """Checks feature columns and every task's label column (see `check_features`, `check_labels`).

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> check_columns({"x": np.ones(3)}, {"a": np.array([0, 1, -1])}, [Binary("a")])
    >>> check_columns({"x": np.ones(3)}, {}, [Binary("a")], "split 'test'")
    Traceback (most recent call last):
    ...
    ValueError: No labels for task 'a' (label key 'a') in split 'test'; its labels are [].
    """
    check_features(features, where)
    for task in tasks:
        if task.label not in labels:
            raise ValueError(
                f"No labels for task {task.name!r} (label key {task.label!r}) in {where}; its "
                f"labels are {sorted(labels)}."
            )
        check_labels(task, labels[task.label], where, require_some=require_labels)
        if task.group is not None and task.group not in labels:
            raise ValueError(
                f"No group ids for task {task.name!r} (Ranking) in {where}: its labels need the key "
                f"{task.group!r} with each example's group (query, user) id; its labels are {sorted(labels)}."
            )
    check_conditions(tasks, labels, where)


def check_conditions(tasks: Sequence[Task], labels: Mapping[str, np.ndarray], where: str = "the data") -> None:
    """Counts the examples where a conditional Binary task's label is 1 but its `given` label is 0.

    Reported as a warning (they are outside the task's sample space, and
    count as 0 in the entire space), or raised for a task built with
    `inconsistent="raise"`. Tasks whose labels are not all given are skipped.

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> tasks = [Binary("click"), Binary("buy", given="click", inconsistent="raise")]
    >>> check_conditions(tasks, {"click": np.array([1, 0, 0]), "buy": np.array([1, np.nan, 1])}, "split 'train'")
    Traceback (most recent call last):
    ...
    ValueError: Task 'buy' (given 'click'): 1 example(s) in split 'train' have buy = 1 where click = 0 (first at row 2); inconsistent='raise' makes this an error.
    """
    by_name = {t.name: t for t in tasks}
    for task in joint_tasks(tasks):
        parent = by_name.get(task.given)
        if parent is None or parent.label not in labels or task.label not in labels:
            continue
        p = np.asarray(labels[parent.label], dtype="float64").reshape(-1)
        c = np.asarray(labels[task.label], dtype="float64").reshape(-1)
        rows = np.flatnonzero(_present(parent, p) & (p == 0) & _present(task, c) & (c == 1))
        if not len(rows):
            continue
        message = (
            f"Task {task.name!r} (given {task.given!r}): {len(rows)} example(s) in {where} have "
            f"{task.label} = 1 where {parent.label} = 0 (first at row {rows[0]}); "
        )
        if task.inconsistent == "raise":
            raise ValueError(message + "inconsistent='raise' makes this an error.")
        warnings.warn(
            message + "they are outside its sample space and count as 0 in the entire space "
            "(inconsistent='raise' makes this an error).",
            stacklevel=3,
        )
