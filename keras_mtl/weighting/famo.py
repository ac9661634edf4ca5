"""Fast adaptive multitask optimisation, FAMO (Liu et al., NeurIPS 2023)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import Weighting, state_weight


@keras.saving.register_keras_serializable(package="keras_mtl")
class FAMO(Weighting):
    """Balances the rate at which every task's log-loss decreases, at O(1) cost per step.

    The model follows sum_t z_t grad log L_t / sum_t (z_t / L_t) with
    z = softmax(xi); i.e. task weights w_t = z_t / (c L_t), c = sum_s z_s / L_s.
    After each step xi moves against J_softmax^T delta, where delta_t is the
    drop of log L_t since the previous step (learning rate `gamma_lr`,
    weight decay `decay`). Here delta uses the previous step's batch instead
    of re-evaluating the same batch after the update (FAMO's extra forward
    pass); the paper's cheaper variant does the same.

    Example:
    >>> famo = FAMO(); famo.task_names = ["a", "b"]; famo.build_state(2)
    >>> [round(float(w), 3) for w in famo.weights_for(tf.constant([1.0, 4.0]), False)]
    [0.8, 0.2]
    """

    key = "famo"

    def __init__(self, gamma_lr: float = 0.025, decay: float = 1e-3, **kwargs):
        if not gamma_lr > 0 or decay < 0:
            raise ValueError(f"FAMO: need gamma_lr > 0 and decay >= 0, got {gamma_lr}, {decay}.")
        super().__init__(**kwargs)
        self.gamma_lr, self.decay = float(gamma_lr), float(decay)

    def build_state(self, num_tasks):
        self.logits = state_weight(self, "logits", (num_tasks,))
        self.previous = state_weight(self, "previous_log_loss", (num_tasks,))
        self.started = state_weight(self, "started", ())

    def weights_for(self, losses, training):
        log_loss = tf.math.log(tf.maximum(tf.cast(losses, self.logits.dtype), 1e-8))
        if training:
            z = tf.nn.softmax(self.logits)
            delta = (self.previous - log_loss) * self.started
            # d(z . delta)/d(xi) = J_softmax^T delta = z * (delta - z . delta)
            grad = z * (delta - tf.reduce_sum(z * delta)) + self.decay * self.logits
            self.logits.assign_sub(self.gamma_lr * grad)
            self.previous.assign(log_loss)
            self.started.assign(1.0)
        z = tf.nn.softmax(self.logits)
        inv = z / tf.exp(log_loss)
        return tf.cast(inv / tf.reduce_sum(inv), losses.dtype)

    def get_config(self):
        return {**super().get_config(), "gamma_lr": self.gamma_lr, "decay": self.decay}
