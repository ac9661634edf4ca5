"""GradDrop: gradient sign dropout (Chen et al., NeurIPS 2020)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting, state_weight, step_seed


@keras.saving.register_keras_serializable(package="keras_mtl")
class GradDrop(GradientWeighting):
    """Per gradient element, keeps either the positive or the negative task gradients.

    P = (1 + sum_t g_t / sum_t |g_t|) / 2 is the sign purity of an element;
    with U ~ Uniform(0, 1) it keeps g_t where (P > U and g_t > 0) or
    (P < U and g_t < 0). Elements where all tasks agree are kept whole. This
    is elementwise, so it works on the all-reduced task gradients of the
    shared parameters (`mode="parameters"` only); U is drawn statelessly from
    a step counter, the same on every replica. The reported weights are each
    task's kept share of its gradient's squared norm.

    Example:
    >>> m = GradDrop(); m.task_names = ["a", "b"]; m.build_state(2)
    >>> g = tf.constant([[1.0, 2.0], [3.0, -2.0]])  # agree on element 0, conflict on 1
    >>> combined, w = m.aggregate_vectors(g, tf.ones(2))
    >>> float(combined[0]), float(combined[1]) in (2.0, -2.0)
    (4.0, True)
    """

    key = "graddrop"
    modes = ("parameters",)

    def __init__(self, leak: float = 0.0, mode: str = "parameters", **kwargs):
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"GradDrop: leak must be in [0, 1], got {leak}.")
        super().__init__(mode=mode, **kwargs)
        self.leak = float(leak)

    def build_state(self, num_tasks):
        self.step = state_weight(self, "step", (), dtype="int64")

    def aggregate_vectors(self, grads, losses):
        purity = 0.5 * (1.0 + tf.reduce_sum(grads, 0) / (tf.reduce_sum(tf.abs(grads), 0) + 1e-12))
        u = tf.random.stateless_uniform(tf.shape(purity), seed=step_seed(self.step), dtype=grads.dtype)
        self.step.assign_add(1)
        keep = tf.cast(
            ((purity > u)[None, :] & (grads > 0)) | ((purity < u)[None, :] & (grads < 0)), grads.dtype
        )
        mask = self.leak + (1.0 - self.leak) * keep
        kept = grads * mask
        weights = tf.reduce_sum(kept * grads, 1) / tf.maximum(tf.reduce_sum(grads * grads, 1), 1e-20)
        return tf.reduce_sum(kept, 0), weights

    def get_config(self):
        return {**super().get_config(), "leak": self.leak}
