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
    >>> model.weighting.task_weights
    {'a': 2.0, 'b': 0.5}
    """

    key = "fixed"

    def __init__(self, weights: Mapping[str, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self._given = {k: float(v) for k, v in (weights or {}).items()}
        self.task_weights: dict[str, float] = {}

    def attach(self, model):
        super().attach(model)
        unknown = sorted(set(self._given) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"Loss weights name unknown task(s) {unknown}; the model's tasks are {self.task_names}."
            )
        self.task_weights = {t.name: self._given.get(t.name, t.weight) for t in model.tasks}
        for name, w in self.task_weights.items():
            if not (w >= 0.0 and w != float("inf")):
                raise ValueError(f"Loss weight of task {name!r} must be finite and >= 0, got {w}.")
        if not any(w > 0 for w in self.task_weights.values()):
            raise ValueError(
                f"All loss weights are zero ({self.task_weights}): nothing would be trained."
            )

    def constant_weights(self):
        return [self.task_weights[n] for n in self.task_names]

    def weights_for(self, losses, training):
        return tf.constant([self.task_weights[n] for n in self.task_names], losses.dtype)

    def get_config(self):
        return {**super().get_config(), "weights": dict(self._given) or None}
