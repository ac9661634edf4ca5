"""Fixed loss weights: sum over tasks of weight x loss."""

from __future__ import annotations

from typing import Mapping

import keras
import tensorflow as tf

from keras_mtl.weighting.base import Weighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class Fixed(Weighting):
    """Total loss = sum_t w_t * L_t, with w_t from `Task.weight` unless given here.

    Args:
        weights: optional `{task_name: weight}` overriding the tasks' weights.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b", weight=0.5)])
    >>> model.compile(optimizer="sgd", weighting=Fixed({"a": 2.0}))
    >>> model.weighting.weights
    {'a': 2.0, 'b': 0.5}
    """

    name = "fixed"

    def __init__(self, weights: Mapping[str, float] | None = None):
        self._given = {k: float(v) for k, v in (weights or {}).items()}

    def build(self, model):
        super().build(model)
        unknown = sorted(set(self._given) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"Loss weights name unknown task(s) {unknown}; the model's tasks are {self.task_names}."
            )
        self.weights = {t.name: self._given.get(t.name, t.weight) for t in model.tasks}
        for name, w in self.weights.items():
            if not (w >= 0.0 and w != float("inf")):
                raise ValueError(f"Loss weight of task {name!r} must be finite and >= 0, got {w}.")
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError(
                f"All loss weights are zero ({self.weights}): nothing would be trained."
            )

    def combine(self, losses):
        return tf.add_n([self.weights[name] * loss for name, loss in losses.items()])

    def get_config(self):
        return {"weights": dict(self._given) or None}
