"""CrossStitch: a learned linear mix of per-task activations (Misra et al., CVPR 2016)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_mtl import _checks


@keras.saving.register_keras_serializable(package="keras_mtl")
class CrossStitch(keras.layers.Layer):
    """Mixes T same-shaped inputs: output_i = sum_j alpha[i, j] * input_j.

    `alpha` is a trainable (T, T) matrix, initialised to `self_weight` on
    the diagonal and `(1 - self_weight) / (T - 1)` off it, so each column
    starts mostly itself with a little of the others (rows sum to 1). It is
    not constrained afterwards, as in the paper.

    Args:
        self_weight: initial diagonal of `alpha`, in [0, 1].

    Example:
    >>> a, b = keras.ops.ones((1, 2)), keras.ops.zeros((1, 2))
    >>> [round(float(x[0, 0]), 3) for x in CrossStitch(0.9)([a, b])]
    [0.9, 0.1]
    """

    def __init__(self, self_weight: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.self_weight = _checks.fraction(self_weight, "self_weight", "CrossStitch")

    def build(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < 2 or any(s[1:] != shapes[0][1:] for s in shapes):
            raise ValueError(
                f"CrossStitch {self.name!r} mixes two or more inputs of the same shape; got {shapes}."
            )
        n = len(shapes)
        initial = np.full((n, n), (1.0 - self.self_weight) / (n - 1))
        np.fill_diagonal(initial, self.self_weight)
        self.alpha = self.add_weight(
            shape=(n, n),
            # A closure is fine: the config rebuilds it from `self_weight`.
            initializer=lambda shape, dtype=None: ops.convert_to_tensor(initial, dtype=dtype),
            name="alpha",
        )

    def call(self, inputs):
        stacked = ops.stack(list(inputs), axis=0)  # (T, batch, ...)
        mixed = ops.tensordot(ops.cast(self.alpha, stacked.dtype), stacked, axes=[[1], [0]])
        return ops.unstack(mixed, num=len(inputs), axis=0)

    def compute_output_shape(self, input_shape):
        return [tuple(s) for s in input_shape]

    def get_config(self) -> dict:
        return {**super().get_config(), "self_weight": self.self_weight}
