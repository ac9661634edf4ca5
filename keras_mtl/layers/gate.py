"""Gate: softmax weights over experts, with training-time diagnostics in the fit logs."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl import _checks
from keras_mtl.layers.gate_statistics import GateStatistics


@keras.saving.register_keras_serializable(package="keras_mtl")
class Gate(keras.layers.Layer):
    """A softmax over `num_experts` from a linear map of the input: one weight per expert.

    Input (batch, features); output (batch, num_experts), each row summing
    to 1. With `statistics=True` (default) a `GateStatistics` metric named
    after the layer is updated from these weights on every training step,
    so `fit` logs `<gate name>/expert_<i>` (mean weight) and
    `<gate name>/entropy`, e.g. `income_gate/expert_3`, and
    `keras.callbacks.TensorBoard` plots them.

    Args:
        num_experts: number of experts the gate weighs (>= 1).
        statistics: whether to log the gate's diagnostics while training.

    Example:
    >>> gate = Gate(3)
    >>> w = gate(keras.ops.ones((2, 4)))
    >>> w.shape, [round(float(s), 5) for s in keras.ops.sum(w, axis=-1)]
    (TensorShape([2, 3]), [1.0, 1.0])
    """

    def __init__(self, num_experts: int, statistics: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = _checks.int_at_least(num_experts, 1, "num_experts", "Gate")
        self.statistics = bool(statistics)
        self.tracker = GateStatistics(self.num_experts, prefix=self.name) if self.statistics else None

    @property
    def training_log_names(self) -> list[str]:
        """The log keys of this gate's statistics (updated by training steps only)."""
        return self.tracker.log_names if self.tracker is not None else []

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"Gate {self.name!r} takes inputs of shape (batch, features); got {input_shape}."
            )
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.num_experts), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(shape=(self.num_experts,), initializer="zeros", name="bias")

    def call(self, inputs, training=None):
        weights = ops.softmax(ops.matmul(inputs, self.kernel) + self.bias, axis=-1)
        # Only training updates the statistics: evaluation, predict and the
        # exported serving function stay free of metric state.
        if training and self.tracker is not None:
            self.tracker.update_state(weights)
        return weights

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_experts)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_experts": self.num_experts, "statistics": self.statistics}
