"""Dynamic weight average (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import Weighting, state_weight


@keras.saving.register_keras_serializable(package="keras_mtl")
class DWA(Weighting):
    """w_t = T softmax(r / temperature)_t with r_t = L_t(e-1) / L_t(e-2), per epoch.

    L_t(e) is task t's mean training loss over epoch e; the first two epochs
    use w_t = 1. Epoch means are accumulated inside the training step and
    rolled over by a callback that `fit` adds automatically.

    Example:
    >>> dwa = DWA(temperature=2.0); dwa.task_names = ["a", "b"]; dwa.build_state(2)
    >>> _ = dwa.history.assign([[2.0, 1.0], [1.0, 1.0]]); _ = dwa.epochs_seen.assign(2)
    >>> [round(float(w), 4) for w in dwa.weights_for(tf.constant([1.0, 1.0]), False)]
    [0.8756, 1.1244]
    """

    key = "dwa"

    def __init__(self, temperature: float = 2.0, **kwargs):
        if not temperature > 0:
            raise ValueError(f"DWA: temperature must be > 0, got {temperature}.")
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def build_state(self, num_tasks):
        # history[0] = L(e-2), history[1] = L(e-1)
        self.history = state_weight(self, "history", (2, num_tasks), initializer="ones")
        self.epochs_seen = state_weight(self, "epochs_seen", (), dtype="int64")
        self.loss_sum = state_weight(self, "loss_sum", (num_tasks,))
        self.steps = state_weight(self, "steps", ())

    def weights_for(self, losses, training):
        if training:
            self.loss_sum.assign_add(tf.cast(losses, self.loss_sum.dtype))
            self.steps.assign_add(1.0)
        ratio = self.history[1] / tf.maximum(self.history[0], 1e-12)
        weights = self.num_tasks * tf.nn.softmax(ratio / self.temperature)
        weights = tf.where(self.epochs_seen >= 2, weights, tf.ones_like(weights))
        return tf.cast(weights, losses.dtype)

    def end_epoch(self):
        """Rolls the epoch's mean losses into the history (called after each epoch)."""
        if float(self.steps.numpy()) == 0:
            return
        mean = self.loss_sum.numpy() / self.steps.numpy()
        self.history.assign([self.history.numpy()[1], mean])
        self.epochs_seen.assign_add(1)
        self.loss_sum.assign(tf.zeros_like(self.loss_sum))
        self.steps.assign(0.0)

    def callbacks(self):
        method = self

        class _RollEpoch(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                method.end_epoch()

        return [_RollEpoch()]

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
