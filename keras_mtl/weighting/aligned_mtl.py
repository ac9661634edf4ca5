"""Aligned-MTL: aligning the principal components of task gradients (Senushkin et al., CVPR 2023)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class AlignedMTL(GradientWeighting):
    """Replaces the task gradients by an orthogonal system with equal norms (the smallest
    singular value), removing both conflicts and dominance; the update is their sum.

    With K = V diag(l) V^T, B = sqrt(l_min) V diag(l)^-1/2 V^T and the update
    is (B G) summed over tasks, i.e. weights = column sums of B (eigenvalues
    below a rank tolerance are dropped, as in the paper's code).

    Example:
    >>> m = AlignedMTL(); m.task_names = ["a", "b"]
    >>> K = tf.constant([[1.0, 0.0], [0.0, 4.0]])  # orthogonal, norms 1 and 2
    >>> [round(float(w), 4) for w in m.aggregate(K, tf.ones(2), True)]
    [1.0, 0.5]
    """

    key = "aligned_mtl"

    def aggregate(self, gram, losses, training):
        values, vectors = tf.linalg.eigh(gram)
        tol = tf.reduce_max(values) * tf.cast(tf.shape(gram)[0], gram.dtype) * 1e-6
        keep = values > tol
        inv_sqrt = tf.where(keep, 1.0 / tf.sqrt(tf.maximum(values, 1e-30)), 0.0)
        smallest = tf.reduce_min(tf.where(keep, values, tf.reduce_max(values)))
        b = tf.sqrt(smallest) * tf.matmul(vectors * inv_sqrt[None, :], vectors, transpose_b=True)
        return tf.reduce_sum(b, axis=0)
