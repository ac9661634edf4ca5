"""Output layers for tasks: an optional per-task tower and one output layer named after the task."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf


def dense_head(
    features: keras.KerasTensor,
    name: str,
    units: int,
    activation: str,
    tower: Sequence[int] = (),
    *,
    destandardize: bool = False,
) -> keras.KerasTensor:
    """Adds `tower` Dense+ReLU layers and a Dense output layer called `name`.

    Works on pooled features (batch, d) and on per-token features
    (batch, T, d) alike, since Dense acts on the last axis. Outputs are float32
    so that mixed-precision trunks still give float32 losses and serving outputs.
    With `destandardize` the output layer is a `ScaledDense`: it predicts
    z-scores and returns them in the label's units.

    Example:
    >>> x = keras.Input((8,))
    >>> dense_head(x, "income", 1, "sigmoid", tower=[4]).shape
    (None, 1)
    >>> dense_head(x, "hours", 1, "linear", destandardize=True).shape
    (None, 1)
    """
    h = features
    for i, width in enumerate(tower):
        h = keras.layers.Dense(width, activation="relu", name=f"{name}_tower_{i}")(h)
    if destandardize:
        return ScaledDense(units, activation=activation, name=name, dtype="float32")(h)
    return keras.layers.Dense(units, activation=activation, name=name, dtype="float32")(h)


@keras.saving.register_keras_serializable(package="keras_mtl")
class ScaledDense(keras.layers.Layer):
    """A Dense output layer for standardised targets: returns `dense(x) * std + mean`.

    The Dense part learns the targets' z-scores, so a regression target on
    any scale trains like one of unit scale, while the layer (and the model,
    and its export) returns values in the label's units. `mean` and `std`
    (one per output unit) are non-trainable weights, saved with the model;
    until `set_stats` is called they are 0 and 1, i.e. no scaling, and
    `adapted` is False. The loss compares `standardize(labels)` with
    `standardize(outputs)` (see `MultiTaskModel.task_losses`).

    Example:
    >>> layer = ScaledDense(1, name="hours")
    >>> _ = layer(np.zeros((1, 3), "float32"))
    >>> layer.set_stats([40.0], [12.0])
    >>> float(layer(np.zeros((1, 3), "float32"))[0, 0]), layer.adapted
    (40.0, True)
    """

    def __init__(self, units: int, activation="linear", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        # Named "dense" inside this layer: the model's layer named after the task is this one.
        self.dense = keras.layers.Dense(self.units, activation=activation, dtype=self.dtype_policy, name="dense")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.mean = self.add_weight(shape=(self.units,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(self.units,), initializer="ones", trainable=False, name="std")
        # 1.0 once stats are set; saved with them, so a loaded model is not adapted again.
        self.adapted_flag = self.add_weight(shape=(), initializer="zeros", trainable=False, name="adapted")

    @property
    def kernel(self):
        return self.dense.kernel

    @property
    def bias(self):
        return self.dense.bias

    @property
    def adapted(self) -> bool:
        """Whether `set_stats` has been called (on this layer or the one it was saved from)."""
        return self.built and float(keras.ops.convert_to_numpy(self.adapted_flag)) > 0

    def set_stats(self, mean, std) -> None:
        """Sets the label mean and standard deviation, one value per output unit (or one for all)."""
        mean = np.broadcast_to(np.asarray(mean, "float32"), (self.units,))
        std = np.broadcast_to(np.asarray(std, "float32"), (self.units,))
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError(
                f"Output {self.name!r}: target stats must be finite with std > 0; got mean "
                f"{mean.tolist()}, std {std.tolist()}."
            )
        self.mean.assign(mean)
        self.std.assign(std)
        self.adapted_flag.assign(1.0)

    def standardize(self, values):
        """`(values - mean) / std`: labels or outputs as the z-scores the loss compares."""
        values = tf.cast(values, self.mean.dtype)
        return (values - self.mean) / self.std

    def call(self, inputs):
        return self.dense(inputs) * self.std + self.mean

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
        }
