"""Small solvers that gradient methods run inside the training step, in TensorFlow.

All work on the Gram matrix K = G G^T of the task gradients (T x T), never on
the gradients themselves, so they cost nothing next to a backward pass and
run in a `tf.function` under any strategy.

Indexing by a value computed in the step (`x[j]` with `j = tf.argmin(...)`)
is written `tf.gather(x, j)`: XLA lowers a strided slice with a tensor index
by treating the index as a compile-time constant, so the compiled step was
recompiled at every new value, every step (MGDA under `jit_compile=True`).
tests/test_xla_recompile.py pins this.
"""

from __future__ import annotations

import tensorflow as tf


def min_norm_weights(gram: tf.Tensor, iterations: int = 50) -> tf.Tensor:
    """Weights w on the simplex minimising ||sum_t w_t g_t||^2 (MGDA's min-norm point).

    Frank-Wolfe as in Sener & Koltun (2018), Algorithm 2, with the exact line
    search between the current point and the best vertex; T = 2 is solved in
    closed form by the first line search.

    Example:
    >>> K = tf.constant([[1.0, 0.0], [0.0, 4.0]])  # orthogonal, norms 1 and 2
    >>> [round(float(v), 4) for v in min_norm_weights(K)]
    [0.8, 0.2]
    """
    gram = tf.cast(gram, tf.float32)
    if gram.shape[0] == 2:
        # From the midpoint, one exact line search towards the better vertex
        # reaches the optimum of a segment: no loop needed.
        iterations = 1
    t = tf.shape(gram)[0]
    w = tf.fill([t], tf.constant(1.0, tf.float32) / tf.cast(t, tf.float32))

    def body(i, w):
        grad = tf.linalg.matvec(gram, w)  # K w: gradient of w^T K w / 2
        j = tf.argmin(grad)
        e = tf.one_hot(j, t, dtype=tf.float32)
        # Minimise ||(1-g) v + g u||^2 over g in [0, 1], v = G^T w, u = g_j.
        vv = tf.tensordot(w, grad, 1)
        vu = tf.gather(grad, j)
        uu = tf.gather(tf.linalg.diag_part(gram), j)
        denom = vv - 2.0 * vu + uu
        gamma = tf.where(denom > 1e-20, tf.clip_by_value((vv - vu) / tf.maximum(denom, 1e-20), 0.0, 1.0), 0.0)
        return i + 1, (1.0 - gamma) * w + gamma * e

    _, w = tf.while_loop(lambda i, w: i < iterations, body, [tf.constant(0), w])
    return tf.cast(w, tf.float32)


def project_to_simplex(v: tf.Tensor) -> tf.Tensor:
    """Euclidean projection of a vector onto the probability simplex.

    Example:
    >>> [float(x) for x in project_to_simplex(tf.constant([2.0, 0.0]))]
    [1.0, 0.0]
    """
    n = tf.shape(v)[0]
    u = tf.sort(v, direction="DESCENDING")
    css = tf.cumsum(u)
    k = tf.range(1, n + 1, dtype=v.dtype)
    cond = u - (css - 1.0) / k > 0
    rho = tf.reduce_max(tf.where(cond, tf.range(n), -1))
    theta = (tf.gather(css, rho) - 1.0) / tf.cast(rho + 1, v.dtype)
    return tf.maximum(v - theta, 0.0)
