"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., ICML 2022)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class NashMTL(GradientWeighting):
    """Weights a > 0 solving (G G^T) a = 1/a: the Nash bargaining solution over task utilities.

    That system is the stationarity condition of the strictly convex
    f(a) = a^T K a / 2 - sum_t log a_t, which is minimised here by damped
    Newton steps kept inside a > 0 (the paper uses a sequence of convex
    programs in cvxpy; the solution is the same). For orthogonal gradients
    a_t = 1/||g_t||: every task moves at the same rate.

    Example:
    >>> m = NashMTL(); m.task_names = ["a", "b"]
    >>> K = tf.constant([[1.0, 0.0], [0.0, 4.0]])  # orthogonal, norms 1 and 2
    >>> [round(float(w), 4) for w in m.aggregate(K, tf.ones(2), True)]
    [1.0, 0.5]
    """

    key = "nash_mtl"

    def __init__(self, mode: str = "parameters", iterations: int = 30, **kwargs):
        super().__init__(mode=mode, **kwargs)
        self.iterations = int(iterations)

    def aggregate(self, gram, losses, training):
        t = self.num_tasks
        # Scale so that the solution is O(1), then undo: a(s K) = a(K) / sqrt(s).
        s = tf.maximum(tf.reduce_max(tf.linalg.diag_part(gram)), 1e-20)
        k = gram / s
        eye = tf.eye(t, dtype=gram.dtype)

        def body(i, a):
            grad = tf.linalg.matvec(k, a) - 1.0 / a
            hess = k + tf.linalg.diag(1.0 / (a * a)) + 1e-9 * eye
            step = tf.linalg.solve(hess, grad[:, None])[:, 0]
            # Largest step in (0, 1] that keeps every a_t at least half of its value.
            ratio = tf.where(step > 0, 0.5 * a / tf.maximum(step, 1e-30), tf.fill([t], 1.0))
            return i + 1, a - tf.minimum(1.0, tf.reduce_min(ratio)) * step

        _, a = tf.while_loop(lambda i, a: i < self.iterations, body, [tf.constant(0), tf.ones([t], gram.dtype)])
        return a / tf.sqrt(s)

    def get_config(self):
        return {**super().get_config(), "iterations": self.iterations}
