"""PCGrad: gradient surgery by projecting conflicting gradients (Yu et al., NeurIPS 2020)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting, pairwise_surgery, state_weight, step_seed


@keras.saving.register_keras_serializable(package="keras_mtl")
class PCGrad(GradientWeighting):
    """For each task i and each other task j in random order: if g_i . g_j < 0,
    remove from g_i its component along g_j. The update is the sum of the results.

    Each projected g_i stays a linear combination of the original gradients,
    so the method tracks the coefficients through the projections using only
    the Gram matrix; the random order is drawn statelessly from a step
    counter, so it is the same on every replica.

    Example:
    >>> p = PCGrad(); p.task_names = ["a", "b"]; p.build_state(2)
    >>> K = tf.constant([[1.0, -1.0], [-1.0, 2.0]])  # g1=(1,0), g2=(-1,1)
    >>> [float(w) for w in p.aggregate(K, tf.constant([1.0, 1.0]), True)]  # (0.5,1.5) = 2 g1 + 1.5 g2
    [2.0, 1.5]
    """

    key = "pcgrad"

    def build_state(self, num_tasks):
        self.step = state_weight(self, "step", (), dtype="int64")

    def aggregate(self, gram, losses, training):
        seed = step_seed(self.step)
        if training:
            self.step.assign_add(1)

        def project(i, j, c, gj):
            dot = tf.tensordot(c, tf.linalg.matvec(gram, gj), 1)  # g_i' . g_j
            coef = tf.where(dot < 0, dot / tf.maximum(tf.gather(tf.linalg.diag_part(gram), j), 1e-20), 0.0)
            return c - coef * gj

        return pairwise_surgery(gram, self.num_tasks, seed, project)
