"""CAGrad: conflict-averse gradient descent (Liu et al., NeurIPS 2021)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting
from keras_mtl.weighting.solvers import project_to_simplex


@keras.saving.register_keras_serializable(package="keras_mtl")
class CAGrad(GradientWeighting):
    """Maximises the worst task improvement within a ball of radius c||g0|| around the mean gradient g0.

    Solves min_{w in simplex} g_w . g0 + sqrt(phi) ||g_w|| (phi = c^2 ||g0||^2)
    by projected gradient descent on the Gram matrix, then updates along
    d = (g0 + sqrt(phi)/||g_w|| g_w) / (1 + c^2). With c = 0 this is the mean
    gradient.

    Example:
    >>> m = CAGrad(c=0.0); m.task_names = ["a", "b"]
    >>> [float(w) for w in m.aggregate(tf.constant([[1.0, -1.0], [-1.0, 2.0]]), tf.ones(2), True)]
    [0.5, 0.5]
    """

    key = "cagrad"

    def __init__(self, c: float = 0.4, mode: str = "parameters", iterations: int = 50, **kwargs):
        if c < 0:
            raise ValueError(f"CAGrad: c must be >= 0, got {c}.")
        super().__init__(mode=mode, **kwargs)
        self.c, self.iterations = float(c), int(iterations)

    def aggregate(self, gram, losses, training):
        gram = tf.cast(gram, tf.float32)
        t = self.num_tasks
        mean = tf.fill([t], tf.constant(1.0 / t, tf.float32))
        g0_sq = tf.tensordot(mean, tf.linalg.matvec(gram, mean), 1)
        sqrt_phi = self.c * tf.sqrt(tf.maximum(g0_sq, 0.0))
        scale = tf.maximum(tf.linalg.trace(gram), 1e-20)  # step size invariant to gradient scale

        def objective_grad(w):
            kw = tf.linalg.matvec(gram, w)
            norm = tf.sqrt(tf.maximum(tf.tensordot(w, kw, 1), 1e-20))
            return tf.linalg.matvec(gram, mean) + sqrt_phi * kw / norm

        def body(i, w):
            return i + 1, project_to_simplex(w - 0.5 * objective_grad(w) / scale * tf.cast(t, tf.float32))

        _, w = tf.while_loop(lambda i, w: i < self.iterations, body, [tf.constant(0), mean])
        gw_norm = tf.sqrt(tf.maximum(tf.tensordot(w, tf.linalg.matvec(gram, w), 1), 1e-20))
        weights = (mean + sqrt_phi / gw_norm * w) / (1.0 + self.c**2)
        return tf.cast(weights, tf.float32)

    def get_config(self):
        return {**super().get_config(), "c": self.c, "iterations": self.iterations}
