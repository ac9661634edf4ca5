"""Per-task running means for the logs (`<task>_loss`, `<task>_weight`), all tasks in one metric.

A Keras `Mean` per task and quantity costs every training step its own
casts, products, sums and variable updates; one metric holding a vector
of sums and counts updates every task with two variable writes. Its
`result()` is a dict, which Keras spreads into the logs by key.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops


class TaskMeans(keras.metrics.Metric):
    """The running mean of one quantity per task, logged as `<task><suffix>`.

    `update_state(values, sample_weight)` takes one value per task (in the
    order of `task_names`) and optional per-task weights. With `constant`
    set (weights that never change, as `Fixed` weighting's), updates are
    skipped and the logs show the constants, at no cost to the step.

    Example:
    >>> m = TaskMeans(["a", "b"], "_loss")
    >>> m.update_state([1.0, 4.0], sample_weight=[1.0, 3.0])
    >>> m.update_state([3.0, 0.0], sample_weight=[1.0, 1.0])
    >>> {k: float(v) for k, v in m.result().items()}
    {'a_loss': 2.0, 'b_loss': 3.0}
    """

    def __init__(self, task_names: Sequence[str], suffix: str, *, constant: Sequence[float] | None = None, **kwargs):
        kwargs.setdefault("name", f"task{suffix}es" if suffix.endswith("s") else f"task{suffix}s")
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self.suffix = suffix
        self.constant = None if constant is None else [float(c) for c in constant]
        n = len(self.task_names)
        self.total = self.add_variable(shape=(n,), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(n,), initializer="zeros", name="count")

    @property
    def log_names(self) -> list[str]:
        return [f"{name}{self.suffix}" for name in self.task_names]

    def update_state(self, values, sample_weight=None):
        if self.constant is not None:
            return
        values = ops.cast(values, self.dtype)
        weight = ops.ones_like(values) if sample_weight is None else ops.cast(sample_weight, self.dtype)
        self.total.assign_add(values * weight)
        self.count.assign_add(weight)

    def result(self):
        means = self.constant if self.constant is not None else ops.divide_no_nan(self.total, self.count)
        return {key: ops.convert_to_tensor(means[i], self.dtype) for i, key in enumerate(self.log_names)}

    def get_config(self):
        return {**super().get_config(), "task_names": self.task_names, "suffix": self.suffix, "constant": self.constant}
