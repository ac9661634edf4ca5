"""GradNorm: balancing gradient norms by learning the loss weights (Chen et al., ICML 2018)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting, state_weight


@keras.saving.register_keras_serializable(package="keras_mtl")
class GradNorm(GradientWeighting):
    """Learns task weights w so that the weighted gradient norms w_t ||g_t|| follow
    mean_s(w_s ||g_s||) * r_t^alpha, where r_t is task t's relative inverse training
    rate (L_t / L_t(0), normalised by its mean).

    Each step applies the current w, then takes one gradient step of size
    `learning_rate` on sum_t |w_t ||g_t|| - target_t| (targets held constant)
    and renormalises w to sum to T, as in the paper. Norms are taken over all
    shared variables (or the representation in `mode="representation"`).

    Example:
    >>> m = GradNorm(learning_rate=0.01); m.task_names = ["a", "b"]; m.build_state(2)
    >>> K = tf.constant([[1.0, 0.0], [0.0, 9.0]])  # norms 1 and 3
    >>> for _ in range(60): w = m.aggregate(K, tf.ones(2), True)
    >>> [round(float(v), 2) for v in m.task_weights.numpy()]  # towards w_a * 1 = w_b * 3, sum 2
    [1.5, 0.5]
    """

    key = "gradnorm"

    def __init__(self, alpha: float = 1.5, learning_rate: float = 0.025, mode: str = "parameters", **kwargs):
        if alpha < 0 or not learning_rate > 0:
            raise ValueError(f"GradNorm: need alpha >= 0 and learning_rate > 0, got {alpha}, {learning_rate}.")
        super().__init__(mode=mode, **kwargs)
        self.alpha, self.learning_rate = float(alpha), float(learning_rate)

    def build_state(self, num_tasks):
        self.task_weights = state_weight(self, "task_weights", (num_tasks,), initializer="ones")
        self.initial_losses = state_weight(self, "initial_losses", (num_tasks,))
        self.started = state_weight(self, "started", ())

    def aggregate(self, gram, losses, training):
        w = tf.identity(self.task_weights)
        if training:
            losses = tf.cast(losses, w.dtype)
            initial = tf.where(self.started > 0, self.initial_losses, losses)
            self.initial_losses.assign(initial)
            self.started.assign(1.0)
            norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 1e-20))
            weighted = w * norms
            ratio = losses / tf.maximum(initial, 1e-12)
            rate = ratio / tf.maximum(tf.reduce_mean(ratio), 1e-12)
            target = tf.reduce_mean(weighted) * rate**self.alpha
            grad = tf.sign(weighted - target) * norms
            new = tf.maximum(w - self.learning_rate * grad, 1e-6)
            self.task_weights.assign(new * self.num_tasks / tf.reduce_sum(new))
        return w

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "learning_rate": self.learning_rate}
