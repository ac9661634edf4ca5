"""Geometric loss strategy (Chennupati et al., CVPR Workshops 2019)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import Weighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class GLS(Weighting):
    """Loss = (prod_t L_t)^(1/T), the geometric mean of the task losses.

    Its gradient is sum_t [GLS / (T L_t)] grad L_t: the geometric mean is
    applied through these weights, computed from the global losses, so the
    update is exact under any strategy. A task at zero loss gets weight 0.

    Example:
    >>> gls = GLS(); gls.task_names = ["a", "b"]
    >>> [round(float(w), 4) for w in gls.weights_for(tf.constant([1.0, 4.0]), True)]
    [1.0, 0.25]
    """

    key = "gls"

    def weights_for(self, losses, training):
        safe = tf.maximum(losses, 1e-12)
        geometric = tf.exp(tf.reduce_mean(tf.math.log(safe)))
        return tf.where(losses > 0, geometric / (self.num_tasks * safe), tf.zeros_like(losses))
