"""Random loss weighting (Lin et al., TMLR 2022)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import Weighting, state_weight, step_seed


@keras.saving.register_keras_serializable(package="keras_mtl")
class RLW(Weighting):
    """Each training step draws weights softmax(z), z ~ N(0, I).

    Draws are stateless functions of a step counter, so every replica of a
    `tf.distribute` strategy uses the same weights. Evaluation uses 1/T each.

    Example:
    >>> rlw = RLW()
    >>> rlw.task_names = ["a", "b"]; rlw.build_state(2)
    >>> w = rlw.weights_for(tf.constant([1.0, 2.0]), training=True)
    >>> round(float(tf.reduce_sum(w)), 5)
    1.0
    """

    key = "rlw"

    def build_state(self, num_tasks):
        self.step = state_weight(self, "step", (), dtype="int64")

    def weights_for(self, losses, training):
        if not training:
            return tf.fill(tf.shape(losses), 1.0 / self.num_tasks)
        z = tf.random.stateless_normal([self.num_tasks], seed=step_seed(self.step), dtype=losses.dtype)
        self.step.assign_add(1)
        return tf.nn.softmax(z)
