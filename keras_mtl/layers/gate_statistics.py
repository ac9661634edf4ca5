"""GateStatistics: running mean gate weight per expert and gate entropy, for the fit logs."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl import _checks


@keras.saving.register_keras_serializable(package="keras_mtl")
class GateStatistics(keras.metrics.Metric):
    """Mean weight a gate gives each expert, and the mean entropy of its weights.

    Updated from the gate weights of the training forward pass itself (no
    extra pass). `result()` is a dict, which Keras spreads into the logs:
    `<prefix>/expert_<i>` for each expert and `<prefix>/entropy` (in nats;
    log(num_experts) is a uniform gate, 0 a gate that always picks one
    expert). TensorBoard groups these tags under `<prefix>`.

    `Gate` updates it on training steps only: evaluation and serving run
    the gates without touching metric state.

    Args:
        num_experts: number of gate outputs.
        prefix: the start of every log key, normally the gate layer's name.

    Example:
    >>> stats = GateStatistics(2, prefix="income_gate")
    >>> stats.update_state(keras.ops.convert_to_tensor([[1.0, 0.0], [0.5, 0.5]]))
    >>> {k: round(float(v), 3) for k, v in stats.result().items()}
    {'income_gate/expert_0': 0.75, 'income_gate/expert_1': 0.25, 'income_gate/entropy': 0.347}
    """

    def __init__(self, num_experts: int, prefix: str, name: str | None = None, dtype=None):
        super().__init__(name=name or f"{prefix}_statistics", dtype=dtype or "float32")
        self.num_experts = _checks.int_at_least(num_experts, 1, "num_experts", "GateStatistics")
        self.prefix = prefix
        # Sums and a count (not running means): under tf.distribute these
        # variables are summed over replicas on read, which gives the global mean.
        self.weight_sum = self.add_variable(shape=(self.num_experts,), initializer="zeros", name="weight_sum")
        self.entropy_sum = self.add_variable(shape=(), initializer="zeros", name="entropy_sum")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    @property
    def log_names(self) -> list[str]:
        """The keys `result()` returns, in order."""
        return [f"{self.prefix}/expert_{i}" for i in range(self.num_experts)] + [
            f"{self.prefix}/entropy"
        ]

    def update_state(self, gate_weights):
        w = ops.cast(gate_weights, self.dtype)
        self.weight_sum.assign_add(ops.sum(w, axis=0))
        # w·log(w) -> 0 as w -> 0; the floor keeps log finite for exact zeros.
        entropy = -ops.sum(w * ops.log(ops.maximum(w, 1e-12)), axis=-1)
        self.entropy_sum.assign_add(ops.sum(entropy))
        self.count.assign_add(ops.cast(ops.shape(w)[0], self.dtype))

    def result(self) -> dict:
        means = ops.divide_no_nan(self.weight_sum, self.count)
        values = [means[i] for i in range(self.num_experts)]
        values.append(ops.divide_no_nan(self.entropy_sum, self.count))
        return dict(zip(self.log_names, values))

    def reset_state(self):
        for v in self.variables:
            v.assign(ops.zeros(v.shape, v.dtype))

    def get_config(self) -> dict:
        return {"num_experts": self.num_experts, "prefix": self.prefix, "name": self.name, "dtype": self.dtype}
