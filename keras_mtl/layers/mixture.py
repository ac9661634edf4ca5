"""MixExperts: the gate-weighted sum of expert outputs."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mtl")
class MixExperts(keras.layers.Layer):
    """`sum_e weights[:, e] * experts[:, e, :]`: one mixture per example.

    Called as `MixExperts()(weights, experts)`, with `weights` of shape
    (batch, E) from a `Gate` and `experts` a list of (batch, E_k, d) tensors
    from `Experts` layers, concatenated in order on the expert axis (so
    sum(E_k) must equal E). Output: (batch, d).

    Example:
    >>> weights = keras.ops.convert_to_tensor([[0.25, 0.75]])
    >>> experts = [keras.ops.convert_to_tensor([[[4.0, 0.0]]]), keras.ops.convert_to_tensor([[[0.0, 4.0]]])]
    >>> MixExperts()(weights, experts).numpy().tolist()
    [[1.0, 3.0]]
    """

    def call(self, weights, experts: Sequence):
        experts = list(experts)
        stacked = experts[0] if len(experts) == 1 else ops.concatenate(experts, axis=1)
        total = sum(int(e.shape[1]) for e in experts)
        if weights.shape[-1] != total:
            raise ValueError(
                f"MixExperts {self.name!r}: the gate gives {weights.shape[-1]} weights for "
                f"{total} experts; they must match."
            )
        return ops.einsum("be,bed->bd", ops.cast(weights, stacked.dtype), stacked)

    def compute_output_shape(self, weights_shape, experts_shape):
        return (weights_shape[0], experts_shape[0][-1])
