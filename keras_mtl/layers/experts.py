"""Experts: several independent Dense stacks over the same input, computed together."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from keras_mtl import _checks


@keras.saving.register_keras_serializable(package="keras_mtl")
class Experts(keras.layers.Layer):
    """`num_experts` independent Dense stacks on one input, stacked on axis 1.

    Input (batch, features); output (batch, num_experts, units[-1]). Every
    expert has its own weights; one einsum per level computes all of them,
    which is what mixture-of-experts models (MMoE, CGC, PLE) mix with gates.

    Args:
        num_experts: how many experts (>= 1).
        units: widths of each expert's Dense layers, e.g. `[64]`.
        activation: activation after every level.

    Example:
    >>> experts = Experts(3, [8, 4])
    >>> experts(keras.ops.ones((2, 5))).shape
    TensorShape([2, 3, 4])
    """

    def __init__(
        self, num_experts: int, units: Sequence[int], activation: str = "relu", **kwargs
    ):
        super().__init__(**kwargs)
        self.num_experts = _checks.int_at_least(num_experts, 1, "num_experts", "Experts")
        self.units = _checks.units(units, "units", "Experts")
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"Experts {self.name!r} takes inputs of shape (batch, features); got {input_shape}."
            )
        # Keras' fan computation multiplies both fans by the leading (expert)
        # axis of a 3-D kernel; scale=num_experts cancels it, so each expert
        # gets exactly the Glorot-uniform range of a Dense layer of its size.
        init = keras.initializers.VarianceScaling(
            scale=float(self.num_experts), mode="fan_avg", distribution="uniform"
        )
        self.kernels, self.biases = [], []
        width = input_shape[-1]
        for i, out in enumerate(self.units):
            self.kernels.append(
                self.add_weight(shape=(self.num_experts, width, out), initializer=init, name=f"kernel_{i}")
            )
            self.biases.append(
                self.add_weight(shape=(self.num_experts, out), initializer="zeros", name=f"bias_{i}")
            )
            width = out

    def call(self, inputs):
        h = self.activation(ops.einsum("bd,edu->beu", inputs, self.kernels[0]) + self.biases[0])
        for kernel, bias in zip(self.kernels[1:], self.biases[1:]):
            h = self.activation(ops.einsum("beu,euv->bev", h, kernel) + bias)
        return h

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_experts, self.units[-1])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "units": list(self.units),
            "activation": keras.activations.serialize(self.activation),
        }
