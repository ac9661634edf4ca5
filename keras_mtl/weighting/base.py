"""The base class every loss-balancing method builds on."""

from __future__ import annotations

import abc
from typing import Mapping

import keras
import tensorflow as tf


class Weighting(abc.ABC):
    """Turns per-task losses into the one loss that the optimizer minimises.

    A method sees the model (for its tasks and shared variables) once in
    `build`, then one dict of per-task losses per step in `combine`. Losses
    arrive as each replica's share of the global masked mean (see
    `keras_mtl.masking`), so a method that combines them linearly is correct
    under any `tf.distribute` strategy with no extra work.

    Subclasses set `name` (the string accepted by `compile(weighting=...)`)
    and implement `combine`; register them with `keras_mtl.weighting.register`.
    """

    name = ""

    def build(self, model: keras.Model) -> None:
        """Called once by `MultiTaskModel.compile`; keeps what the method needs."""
        self.task_names = [t.name for t in model.tasks]

    @abc.abstractmethod
    def combine(self, losses: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Returns the scalar training loss for one step."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Weighting":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"
