"""IMTL-G: impartial multi-task learning, gradient part (Liu et al., ICLR 2021)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class IMTL(GradientWeighting):
    """Finds the combined gradient g = sum_t a_t g_t (sum a = 1) whose projections on every
    unit task gradient u_t = g_t/||g_t|| are equal.

    Closed form from the paper: with D rows g_1 - g_t and U rows u_1 - u_t
    (t >= 2), a_{2:T} = g_1 U^T (D U^T)^-1 and a_1 = 1 - sum a_{2:T}; every
    product is read off the Gram matrix. (The paper's loss-scale part,
    IMTL-L, is not included.)

    Example:
    >>> m = IMTL(); m.task_names = ["a", "b"]
    >>> K = tf.constant([[1.0, 0.0], [0.0, 4.0]])  # orthogonal, norms 1 and 2
    >>> [round(float(w), 4) for w in m.aggregate(K, tf.ones(2), True)]
    [0.6667, 0.3333]
    """

    key = "imtl"

    def aggregate(self, gram, losses, training):
        norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 1e-20))
        # g_a . u_b = K[a, b] / n_b
        gu = gram / norms[None, :]
        # (g_1 - g_i) . (u_1 - u_j) for i, j >= 2
        d_u = gu[0, 0] - gu[0:1, 1:] - gu[1:, 0:1] + gu[1:, 1:]
        g1_u = gu[0, 0] - gu[0, 1:]  # g_1 . (u_1 - u_j)
        alpha = tf.linalg.solve(tf.transpose(d_u), g1_u[:, None])[:, 0]
        return tf.concat([[1.0 - tf.reduce_sum(alpha)], alpha], axis=0)
