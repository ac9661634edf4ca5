"""`InformationTransfer`: AITM's attention between what the previous task passes on and a task's own tower."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mtl")
class InformationTransfer(keras.layers.Layer):
    """Adaptive information transfer (Xi et al., KDD 2021): `[p, q] -> z`.

    `p` is what the previous task transfers, `q` this task's tower output,
    both (batch, d). Each u in {p, q} is projected three ways (h1, h2, h3);
    its attention weight is softmax over u of <h1(u), h2(u)> / sqrt(d), and
    the output is the weighted sum of the h3(u): the task learns, example by
    example, how much to take from the earlier step.

    Example:
    >>> import numpy as np
    >>> layer = InformationTransfer()
    >>> z = layer([np.ones((2, 4), "float32"), np.zeros((2, 4), "float32")])
    >>> tuple(z.shape), tuple(layer.attention([np.ones((2, 4), "float32"), np.zeros((2, 4), "float32")]).shape)
    ((2, 4), (2, 2))
    """

    def build(self, input_shape):
        d = input_shape[0][-1]
        if input_shape[1][-1] != d:
            raise ValueError(
                f"InformationTransfer {self.name!r}: the transferred and the tower features must have one width; "
                f"got {input_shape[0][-1]} and {input_shape[1][-1]}."
            )
        self.h1 = keras.layers.Dense(d, use_bias=False, name="query")
        self.h2 = keras.layers.Dense(d, use_bias=False, name="key")
        self.h3 = keras.layers.Dense(d, use_bias=False, name="value")
        for layer in (self.h1, self.h2, self.h3):
            layer.build((None, d))
        self.width = d

    def attention(self, inputs):
        """(batch, 2): the weights of [transferred, own] per example."""
        u = ops.stack(list(inputs), axis=1)  # (batch, 2, d)
        scores = ops.sum(self.h1(u) * self.h2(u), axis=-1) / ops.sqrt(ops.cast(self.width, u.dtype))
        return ops.softmax(scores, axis=-1)

    def call(self, inputs):
        u = ops.stack(list(inputs), axis=1)
        return ops.sum(self.attention(inputs)[..., None] * self.h3(u), axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape[1]
