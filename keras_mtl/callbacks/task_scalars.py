"""`TaskScalars`: each task's logs grouped under its name in TensorBoard."""

from __future__ import annotations

import keras

from keras_mtl.callbacks._writer import MTLWriter
from keras_mtl._conditions import log_groups
from keras_mtl._logs import split_log_key


class TaskScalars(MTLWriter):
    """Per-task TensorBoard groups: `<task>/<metric>` and `<task>/val_<metric>` each epoch.

    Example:
    >>> import tempfile
    >>> cb = TaskScalars(tempfile.mkdtemp())
    >>> cb.log_dir.endswith("mtl")
    True
    """

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        names = log_groups(self.model.tasks)  # `click_and_buy_auc` is a group of its own, not click's
        for key, value in logs.items():
            owner = split_log_key(key, names)  # the longest task name: `a_b_auc` is a_b's, not a's
            if owner is not None:
                prefix, task, metric = owner
                self.writer.scalar(f"{task}/{prefix}{metric}", float(value), epoch)
        lr = getattr(self.model.optimizer, "learning_rate", None)
        if lr is not None:
            self.writer.scalar("optimizer/learning_rate", float(keras.ops.convert_to_numpy(lr)), epoch)
        # Once an epoch: a run killed later keeps every finished epoch's scalars.
        self.writer.flush()


__all__ = ["TaskScalars"]
