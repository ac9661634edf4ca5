"""SoftSharingPenalty: pulls corresponding weights of the task columns towards each other."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl import _checks, _compat


@keras.saving.register_keras_serializable(package="keras_mtl")
class SoftSharingPenalty(keras.layers.Layer):
    """Adds `penalty * sum_{i<j} ||theta_i - theta_j||^2` over `num_columns` task columns to the loss.

    Call it once per column, on that column's layer outputs level by level,
    with the column's index: `last_i = penalty_layer([h_i0, h_i1], index=i)`.
    Each call returns the column's last output unchanged. The layers that
    produced the level-k outputs are compared at level k: theta is all their
    trainable weights (kernel and bias), which must have the same shapes in
    every column. One call per column (rather than one call on all of them)
    keeps each task's output independent of the other columns in the graph,
    so `shared_layer_names` counts the columns as task-specific; this layer
    has no weights of its own.

    The penalty is one of the layer's `losses`, computed from the weights
    whenever the model's losses are read, as Keras' weight regularizers are
    (not stored by `add_loss`: see `_get_own_losses`). So `loss` and
    `val_loss` both include it, and `MultiTaskModel.compute_loss` adds it.
    Training steps also log its value under the layer's name (a
    `keras.metrics.Mean`, updated by the `index=0` call).

    Args:
        penalty: lambda, a finite number >= 0.
        num_columns: how many columns are tied (>= 2).

    Example:
    >>> import numpy as np
    >>> x = keras.Input((3,))
    >>> tie = SoftSharingPenalty(0.5, num_columns=2, name="soft_sharing_penalty")
    >>> a = tie([keras.layers.Dense(2, name="a_0")(x)], index=0)
    >>> b = tie([keras.layers.Dense(2, name="b_0")(x)], index=1)
    >>> model = keras.Model(x, [a, b])
    >>> _ = model(np.ones((1, 3)))
    >>> wa, wb = model.get_layer("a_0").get_weights(), model.get_layer("b_0").get_weights()
    >>> want = 0.5 * sum(np.sum((u - v) ** 2) for u, v in zip(wa, wb))
    >>> bool(np.isclose(float(model.losses[0]), want))
    True
    """

    def __init__(self, penalty: float = 1e-3, num_columns: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.penalty = _checks.non_negative(penalty, "penalty", "SoftSharingPenalty")
        self.num_columns = _checks.int_at_least(num_columns, 2, "num_columns", "SoftSharingPenalty")
        # The columns are found through the Keras history of the inputs, so
        # they must arrive as the producing layers' own tensors, not as casts.
        _compat.keep_input_tensors(self)
        self.tracker = keras.metrics.Mean(name=self.name)
        # The columns' layers, by column index. Set without Keras' attribute
        # tracking: they (and their weights) belong to the model, not to this layer.
        _compat.set_untracked(self, "_columns", {})

    @property
    def training_log_names(self) -> list[str]:
        """The log key of the penalty value (updated by training steps only)."""
        return [self.tracker.name]

    def compute_output_spec(self, column, index: int, training=None):
        if not isinstance(index, int) or not 0 <= index < self.num_columns:
            raise ValueError(
                f"SoftSharingPenalty {self.name!r}: index must be an integer in "
                f"[0, {self.num_columns}), got {index!r}."
            )
        if index not in self._columns:
            self._columns[index] = [self._producer(t) for t in column]
        return keras.KerasTensor(column[-1].shape, dtype=column[-1].dtype)

    def _producer(self, tensor) -> keras.layers.Layer:
        history = _compat.keras_history(tensor)
        layer = getattr(history, "operation", None)
        if not isinstance(layer, keras.layers.Layer) or not layer.trainable_weights:
            raise ValueError(
                f"SoftSharingPenalty {self.name!r} must be called on the symbolic outputs of "
                "the columns' layers (while building a Functional model), so it can find "
                "their weights."
            )
        return layer

    def _groups(self) -> list[tuple]:
        """One tuple per weight position: that weight in every column."""
        missing = sorted(set(range(self.num_columns)) - set(self._columns))
        if missing:
            raise ValueError(
                f"SoftSharingPenalty {self.name!r} ties {self.num_columns} columns but was "
                f"never called with index {missing}."
            )
        columns = [self._columns[i] for i in range(self.num_columns)]
        if len({len(c) for c in columns}) != 1:
            raise ValueError(
                f"SoftSharingPenalty {self.name!r}: columns have different depths "
                f"{[len(c) for c in columns]}."
            )
        groups = []
        for level, layers in enumerate(zip(*columns)):
            shapes = [[tuple(v.shape) for v in layer.trainable_weights] for layer in layers]
            if any(s != shapes[0] for s in shapes):
                raise ValueError(
                    f"SoftSharingPenalty {self.name!r}: level {level} layers "
                    f"{[layer.name for layer in layers]} have weights of different shapes {shapes}."
                )
            groups.extend(zip(*(layer.trainable_weights for layer in layers)))
        return groups

    def value(self):
        """The current penalty, `penalty * sum_{i<j} ||theta_i - theta_j||^2`, as a float32 scalar."""
        total = ops.zeros((), "float32")
        for group in self._groups():
            group = [ops.cast(v, "float32") for v in group]
            # Pairwise differences, not T*sum||v||^2 - ||sum v||^2: no
            # cancellation when the columns are close, which is the point.
            for i in range(len(group)):
                for j in range(i + 1, len(group)):
                    total = total + ops.sum(ops.square(group[i] - group[j]))
        return self.penalty * total

    def _get_own_losses(self):
        # Keras keeps add_loss() tensors in one list per layer, shared by the
        # replica threads of a MirroredStrategy step: a replica can then read
        # its neighbour's tensor, recorded on the neighbour's gradient tape,
        # and lose the penalty's gradient (one device and two disagree). The
        # penalty depends on weights only, so, like a weight regularizer, it
        # is computed afresh in whichever thread reads `model.losses`.
        if len(self._columns) < self.num_columns:
            return []  # not (fully) wired into a model yet
        return [self.value()]

    def call(self, column, index: int, training=None):
        self._groups()  # fails clearly if a column was never wired in
        if training and index == 0:  # once per training forward pass
            self.tracker.update_state(self.value())
        return column[-1]

    def get_config(self) -> dict:
        return {**super().get_config(), "penalty": self.penalty, "num_columns": self.num_columns}
