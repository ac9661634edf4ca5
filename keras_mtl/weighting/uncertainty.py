"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl import _masking
from keras_mtl.weighting.base import Weighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class Uncertainty(Weighting):
    """Learns one log-variance s_t per task: loss = sum_t exp(-s_t)/2 * L_t + s_t/2.

    s_t is trained by the model's optimizer with everything else; at its
    optimum exp(s_t) = L_t, so a task's weight exp(-s_t)/2 shrinks as its
    loss grows. The reported task weight is exp(-s_t)/2.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")])
    >>> model.compile(optimizer="adam", weighting="uncertainty")
    >>> [v.path for v in model.weighting.trainable_variables]
    ['weighting_uncertainty/log_variance']
    """

    key = "uncertainty"

    def build_state(self, num_tasks):
        self.log_variance = self.add_weight(
            name="log_variance", shape=(num_tasks,), initializer="zeros", trainable=True
        )

    def combine(self, shares, losses, training):
        s = tf.cast(self.log_variance, shares.dtype)
        weights = 0.5 * tf.exp(-s)
        # The regulariser is computed in full on every replica: scale it to a share.
        total = tf.reduce_sum(weights * shares) + _masking.per_replica_share(0.5 * tf.reduce_sum(s))
        return total, weights
