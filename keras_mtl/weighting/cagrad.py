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

        if t == 2:
            w = _two_task_solution(gram, sqrt_phi)
        else:

            def objective_grad(w):
                kw = tf.linalg.matvec(gram, w)
                norm = tf.sqrt(tf.maximum(tf.tensordot(w, kw, 1), 1e-20))
                return tf.linalg.matvec(gram, mean) + sqrt_phi * kw / norm

            def body(i, w):
                step = 0.5 * objective_grad(w) / scale * tf.cast(t, tf.float32)
                return i + 1, project_to_simplex(w - step)

            _, w = tf.while_loop(lambda i, w: i < self.iterations, body, [tf.constant(0), mean])
        gw_norm = tf.sqrt(tf.maximum(tf.tensordot(w, tf.linalg.matvec(gram, w), 1), 1e-20))
        weights = (mean + sqrt_phi / gw_norm * w) / (1.0 + self.c**2)
        return tf.cast(weights, tf.float32)

    def get_config(self):
        return {**super().get_config(), "c": self.c, "iterations": self.iterations}


def _two_task_solution(gram: tf.Tensor, sqrt_phi: tf.Tensor) -> tf.Tensor:
    """The exact minimiser over w = (a, 1 - a), a in [0, 1], of g_w . g0 + sqrt_phi ||g_w||.

    With g_w = u + a v (u = g2, v = g1 - g2) the objective is
    b0 + b1 a + s sqrt(A a^2 + 2 B a + C), convex in a. Its derivative is zero
    where (A a + B) / sqrt(A a^2 + 2 B a + C) = -b1 / s =: r, which has the
    closed-form root a = -B/A + sign(r) sqrt(r^2 (AC - B^2) / (A^2 (A - r^2)))
    when r^2 < A; otherwise the derivative keeps one sign and the optimum is
    an end point. One solve instead of an iterative loop: CAGrad's cost for
    two tasks is then that of the Gram matrix.
    """
    g11, g12, g22 = gram[0, 0], gram[0, 1], gram[1, 1]
    a_ = tf.maximum(g11 - 2.0 * g12 + g22, 0.0)  # ||g1 - g2||^2
    b_ = g12 - g22
    c_ = g22
    b1 = 0.5 * (g11 - g22)  # (g1 - g2) . g0
    tiny = 1e-12 * tf.maximum(g11 + g22, 1e-30)
    s = tf.maximum(sqrt_phi, 1e-30)
    r = -b1 / s
    det = tf.maximum(a_ * c_ - b_ * b_, 0.0)
    safe_a = tf.maximum(a_, tiny)
    gap = tf.maximum(safe_a - r * r, tiny)
    interior = -b_ / safe_a + tf.sign(r) * tf.sqrt(r * r * det / (safe_a * safe_a * gap))
    end_point = tf.where(b1 > 0.0, 0.0, 1.0)  # f' > 0 everywhere: a = 0; f' < 0: a = 1
    a = tf.where(r * r < a_, interior, end_point)
    # g1 == g2: every a gives the same direction; stay at the mean.
    a = tf.where(a_ <= tiny, 0.5, tf.clip_by_value(a, 0.0, 1.0))
    return tf.stack([a, 1.0 - a])
