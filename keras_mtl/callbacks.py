"""TensorBoard logging of what is particular to multi-task training.

`keras.callbacks.TensorBoard` already logs every log key (`income_loss`,
`income_auc`, `income_weight`, ...) as `epoch_<key>`. These callbacks add:

- `TaskScalars`: the same values regrouped per task (`income/loss`,
  `income/auc`, `income/weight`, ...) so each task's charts sit together,
  plus the learning rate;
- `GradientConflict`: every N steps, on a fixed probe batch, each task's
  gradient norm on the shared variables, the cosine between every pair of
  task gradients (below 0: conflict), the running share of checks with any
  conflict, and the cosine matrix as an image;
- `TaskAffinity`: every N steps, the lookahead affinity of Fifty et al.
  (2021), averaged over the run, logged, saved as `affinity.json`, with
  suggested task groupings.

All write to `<log_dir>/mtl`, off the training step: a probe costs one
forward and T backward passes on one batch.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import diagnostics


def _probe_batch(probe):
    if isinstance(probe, tf.data.Dataset):
        probe = next(iter(probe))
    return keras.utils.unpack_x_y_sample_weight(probe)


class _MTLWriter(keras.callbacks.Callback):
    """Owns the `<log_dir>/mtl` summary writer."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = os.path.join(str(log_dir), "mtl")
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.model.tasks]


class TaskScalars(_MTLWriter):
    """Per-task TensorBoard groups: `<task>/<metric>` and `<task>/val_<metric>` each epoch.

    Example:
    >>> import keras_mtl as mtl, tempfile
    >>> cb = TaskScalars(tempfile.mkdtemp())
    >>> cb.log_dir.endswith("mtl")
    True
    """

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        with self.writer.as_default(step=epoch):
            for task in self.task_names:
                for key, value in logs.items():
                    for prefix, out in ((f"{task}_", ""), (f"val_{task}_", "val_")):
                        if key.startswith(prefix):
                            tf.summary.scalar(f"{task}/{out}{key[len(prefix):]}", float(value))
            lr = getattr(self.model.optimizer, "learning_rate", None)
            if lr is not None:
                tf.summary.scalar("optimizer/learning_rate", float(keras.ops.convert_to_numpy(lr)))


class GradientConflict(_MTLWriter):
    """Every `every_n_steps` training steps: task gradient norms and pairwise cosines on a probe batch.

    Tags: `<task>/grad_norm`, `conflict/cosine/<a>__<b>`, `conflict/share`
    (fraction of checks so far where some pair had cosine < 0) and the image
    `conflict/cosine_matrix` (blue -1, white 0, red +1).

    Args:
        log_dir: the run's log directory (written to `<log_dir>/mtl`).
        probe: a batch `(x, y[, sample_weight])` or a dataset whose first batch is used.
        every_n_steps: how often to probe.

    Example:
    >>> import tempfile
    >>> cb = GradientConflict(tempfile.mkdtemp(), probe=(np.ones((2, 3)), {"a": np.ones(2)}), every_n_steps=50)
    >>> cb.every_n_steps
    50
    """

    def __init__(self, log_dir: str, probe, every_n_steps: int = 100):
        super().__init__(log_dir)
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}.")
        self.every_n_steps = int(every_n_steps)
        self.x, self.y, self.sample_weight = _probe_batch(probe)
        self._step = 0
        self._checks = 0
        self._conflicts = 0
        self._fn = None

    def on_train_begin(self, logs=None):
        self._fn = tf.function(lambda x, y, w: diagnostics.task_gradients(self.model, x, y, w))

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every_n_steps == 0:
            self.check(self._step)

    def check(self, step: int) -> np.ndarray:
        """Probes now and writes the results at `step`; returns the cosine matrix."""
        grads = self._fn(self.x, self.y, self.sample_weight)
        cos = diagnostics.cosine_matrix(grads)
        norms = np.linalg.norm(np.asarray(grads, dtype=np.float64), axis=1)
        names = self.task_names
        self._checks += 1
        self._conflicts += int(any(cos[i, j] < 0 for i, j in diagnostics.pairs(names)))
        with self.writer.as_default(step=step):
            for name, norm in zip(names, norms):
                tf.summary.scalar(f"{name}/grad_norm", norm)
            for i, j in diagnostics.pairs(names):
                tf.summary.scalar(f"conflict/cosine/{names[i]}__{names[j]}", cos[i, j])
            tf.summary.scalar("conflict/share", self._conflicts / self._checks)
            tf.summary.image("conflict/cosine_matrix", diagnostics.heatmap_image(cos))
        return cos


class TaskAffinity(_MTLWriter):
    """Every `every_n_steps` steps: lookahead inter-task affinity on a probe batch, averaged over the run.

    Tags `affinity/<i>__to__<j>` and the image `affinity/matrix`; at the end of
    training `<log_dir>/mtl/affinity.json` holds the mean matrix, the task
    names and suggested groupings for every number of groups.

    Example:
    >>> import tempfile
    >>> cb = TaskAffinity(tempfile.mkdtemp(), probe=(np.ones((2, 3)), {"a": np.ones(2)}))
    >>> cb.learning_rate
    0.1
    """

    def __init__(self, log_dir: str, probe, every_n_steps: int = 200, learning_rate: float = 0.1):
        super().__init__(log_dir)
        if every_n_steps < 1 or not learning_rate > 0:
            raise ValueError("TaskAffinity needs every_n_steps >= 1 and learning_rate > 0.")
        self.every_n_steps = int(every_n_steps)
        self.learning_rate = float(learning_rate)
        self.x, self.y, self.sample_weight = _probe_batch(probe)
        self._step = 0
        self._sum = None
        self._count = 0
        self._fn = None

    def on_train_begin(self, logs=None):
        self._fn = tf.function(
            lambda x, y, w: diagnostics.lookahead_affinity(self.model, x, y, w, self.learning_rate)
        )

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every_n_steps == 0:
            self.check(self._step)

    def check(self, step: int) -> np.ndarray:
        """Measures affinity now, logs it at `step`, and returns the running mean."""
        a = np.asarray(self._fn(self.x, self.y, self.sample_weight), dtype=np.float64)
        self._sum = a if self._sum is None else self._sum + a
        self._count += 1
        names = self.task_names
        with self.writer.as_default(step=step):
            for i, src in enumerate(names):
                for j, dst in enumerate(names):
                    if i != j:
                        tf.summary.scalar(f"affinity/{src}__to__{dst}", a[i, j])
            scale = max(np.abs(self.mean).max(), 1e-12)
            tf.summary.image("affinity/matrix", diagnostics.heatmap_image(self.mean, -scale, scale))
        return self.mean

    @property
    def mean(self) -> np.ndarray:
        if self._sum is None:
            raise ValueError("No affinity measured yet.")
        return self._sum / self._count

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self._count == 0:
            return
        names = self.task_names
        result = {
            "tasks": names,
            "affinity": self.mean.tolist(),
            "measurements": self._count,
            "groupings": {
                str(k): diagnostics.suggest_groups(self.mean, names, k) for k in range(1, len(names) + 1)
            },
        }
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(self.log_dir, "affinity.json"), "w") as f:
            json.dump(result, f, indent=2)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and says which task(s) caused it, and when.

    Keras' `TerminateOnNaN` only reports "NaN loss"; with several tasks the
    first question is which one. Raises `FloatingPointError` naming the
    task(s), their values, the epoch and the step, after the step that
    produced them (later steps would only spread the NaN into every weight).

    Example:
    >>> cb = StopOnNonFiniteLoss()
    >>> cb.check({"loss": 1.0, "a_loss": 0.5}, epoch=0, step=3)
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0
        self._step = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        self.check(logs or {}, self._epoch, self._step)

    def check(self, logs: dict, epoch: int, step: int) -> None:
        """Raises if `logs` holds a non-finite loss."""
        bad = {
            k[: -len("_loss")]: float(v)
            for k, v in logs.items()
            if k.endswith("_loss") and k != "loss" and not np.isfinite(float(v))
        }
        total = logs.get("loss")
        if bad or (total is not None and not np.isfinite(float(total))):
            if self.model is not None:
                self.model.stop_training = True
            which = (
                f"task(s) {sorted(bad)} ({', '.join(f'{k}_loss={v}' for k, v in sorted(bad.items()))})"
                if bad
                else f"the total loss ({total}; every task loss is finite: check regularisation or the weighting method)"
            )
            raise FloatingPointError(
                f"Training stopped at epoch {epoch + 1}, step {step}: non-finite loss for {which}. "
                "Check those tasks' labels (NaN/inf values other than the missing-label marker) "
                "and their loss scale or learning rate."
            )


def monitoring(
    log_dir: str,
    probe=None,
    *,
    conflict_every: int = 100,
    affinity_every: int = 200,
    histogram_freq: int = 0,
) -> list[keras.callbacks.Callback]:
    """The default monitoring callbacks for a run: Keras' TensorBoard plus the MTL ones above.

    Without a probe batch only the scalar callbacks are returned.

    Example:
    >>> import tempfile
    >>> [type(c).__name__ for c in monitoring(tempfile.mkdtemp())]
    ['TensorBoard', 'TaskScalars', 'StopOnNonFiniteLoss']
    """
    callbacks: list = [
        keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=histogram_freq),
        TaskScalars(log_dir),
        StopOnNonFiniteLoss(),
    ]
    if probe is not None:
        if conflict_every:
            callbacks.append(GradientConflict(log_dir, probe, every_n_steps=conflict_every))
        if affinity_every:
            callbacks.append(TaskAffinity(log_dir, probe, every_n_steps=affinity_every))
    return callbacks


__all__: Sequence[str] = ["TaskScalars", "GradientConflict", "TaskAffinity", "StopOnNonFiniteLoss", "monitoring"]
