"""TensorBoard logging of what is particular to multi-task training.

`TensorBoard` is Keras' callback without a per-step cost Keras 3.15 pays
for nothing when it logs per epoch.

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
  suggested task groupings;
- `ExpertUtilisation`: for MoE models (MMoE, CGC, PLE), each epoch, the
  gate × expert mean gate weights as a heatmap image, and `experts.json`.

All write to `<log_dir>/mtl`, off the training step: a probe costs one
forward and T backward passes on one batch, an affinity check T more
forward passes. They write with `keras_mtl.events` (summary protos built
from numpy, no TensorFlow ops per value).
"""

from __future__ import annotations

import json
import math
import os
import weakref
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import diagnostics, events, finite
from keras_mtl.layers.gate_layout import gate_layout, gate_tables
from keras_mtl.logs import owning_task, split_log_key


# model -> {id(raw probe features): (raw features, encoded features)}, while the model lives.
_ENCODED_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# model -> (key, diagnostics.Probed) of its last probe: at a step where both probes
# are due (every affinity check, at the default frequencies) they share it.
_LAST_PROBE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probe_batch(probe):
    if isinstance(probe, tf.data.Dataset):
        probe = next(iter(probe))
    return keras.utils.unpack_x_y_sample_weight(probe)


class _MTLWriter(keras.callbacks.Callback):
    """Owns an event file in `<log_dir>/mtl` (one per fit: closed when training ends)."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = os.path.join(str(log_dir), "mtl")
        self.writer = events.EventWriter(self.log_dir)

    def on_train_end(self, logs=None):
        self.writer.close()

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.model.tasks]


class TensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` without its per-step cost when it writes scalars per epoch.

    Keras 3.15's `on_train_batch_end` calls `summary.scalar` for every log on
    every step even with `update_freq="epoch"`, when no writer is active and
    nothing is written: about 0.7 s per 880 census-income steps, most of
    the monitoring cost of a short run. This skips that call when it would
    do nothing (per-epoch logging, no graph to write, no profiling). When
    Keras only writes per-epoch scalars (also no histograms or embeddings),
    it writes them with `keras_mtl.events` instead of `tf.summary`'s eager
    ops (5 ms an epoch for census-income's 19 values, and the validation
    writer's creation), the same records in the same files; everything else
    is Keras' own.

    Example:
    >>> import tempfile
    >>> TensorBoard(tempfile.mkdtemp()).update_freq
    'epoch'
    """

    _scalar_summaries = None  # an events.ScalarSummaries while Keras only writes per-epoch scalars

    def _per_epoch_only(self) -> bool:
        return (
            self.update_freq == "epoch"
            # Private flags of Keras' class; if a Keras version lacks them, defer to it.
            and getattr(self, "_should_write_train_graph", True) is False
            and getattr(self, "_should_trace", True) is False
        )

    def set_model(self, model):
        super().set_model(model)  # Keras starts a fit's writers afresh here
        # Decided once per fit: writers made by one module are written through it.
        scalars_only = (
            self._per_epoch_only() and not self.write_graph and not self.histogram_freq and not self.embeddings_freq
        )
        self._scalar_summaries = events.ScalarSummaries() if scalars_only else None

    @property
    def summary(self):
        if self._scalar_summaries is not None:
            return self._scalar_summaries
        return super().summary

    def on_train_batch_end(self, batch, logs=None):
        if not (self._per_epoch_only() and not self.write_steps_per_second):
            super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self._scalar_summaries is not None:
            # On disk each epoch (0.1 ms), as TaskScalars: a run killed later keeps its finished epochs.
            for writer in self._writers.values():
                writer.flush()


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
        names = self.task_names
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


class _Probe(_MTLWriter):
    """Calls the subclass's `check(step)` once every `every_n_steps` training steps, off the training step.

    Steps are counted in `on_train_batch_begin`, and a due check runs before
    the next step starts (or at the end of the epoch): a callback that
    overrides `on_train_batch_end` makes Keras read every step's logs back
    as Python numbers and run callbacks in step with training, a cost paid
    on every step rather than only on probed ones.
    """

    def __init__(self, log_dir: str, probe, every_n_steps: int):
        super().__init__(log_dir)
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}.")
        self.every_n_steps = int(every_n_steps)
        self.x, self.y, self.sample_weight = _probe_batch(probe)
        self._step = 0  # training steps completed
        self._checked = 0  # the step of the last check

    @property
    def inputs(self):
        """The probe's features as the model's probe function should take them.

        Raw features are encoded once by the model's preprocessing front
        (`MultiTaskModel.preprocessing`), so the probe runs and is traced
        through the core only: on census-income tracing it took 0.15 s
        instead of 0.4-0.7 s, and each call half the time. Probes given the
        same batch (as `monitoring` gives them) share one encoding.
        """
        cache = _ENCODED_PROBES.setdefault(self.model, {})
        # The raw batch stays in the cache, so its id is not reused while the entry lives.
        raw, encoded = cache.get(id(self.x), (None, None))
        if raw is not self.x:
            split = getattr(self.model, "preprocessing", None)
            encoded = split.encoder(self.x) if split is not None and not split.accepts(self.x) else self.x
            cache[id(self.x)] = (self.x, encoded)
        return encoded

    def probe(self, lookahead_rate: float | None = None) -> diagnostics.Probed:
        """The model's task gradients and losses on the probe batch at its current weights (`diagnostics.traced_probe`).

        Computed once per optimizer step for every probe callback given the
        same batch: a conflict check reuses the affinity check's call of the
        same step (`monitoring` lists `TaskAffinity` first for that).
        """
        optimizer = getattr(self.model, "optimizer", None)
        step = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer is not None else None
        key = (step, id(self.x), id(self.y), id(self.sample_weight))
        last = _LAST_PROBE.get(self.model)
        if step is not None and last is not None and last[0] == key and lookahead_rate in (None, last[2]):
            return last[1]
        result = diagnostics.traced_probe(self.model)(self.inputs, self.y, self.sample_weight, lookahead_rate)
        _LAST_PROBE[self.model] = (key, result, lookahead_rate)
        return result

    def on_train_batch_begin(self, batch, logs=None):
        self._check_if_due()
        self._step += 1

    def on_epoch_end(self, epoch, logs=None):
        self._check_if_due()

    def _check_if_due(self):
        if self._step and self._step % self.every_n_steps == 0 and self._checked != self._step:
            self._checked = self._step
            self.check(self._step)
            # Each check on disk (0.1 ms): a run killed later keeps what it measured.
            self.writer.flush()


class GradientConflict(_Probe):
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
        super().__init__(log_dir, probe, every_n_steps)
        self._checks = 0
        self._conflicts = 0

    def check(self, step: int) -> np.ndarray:
        """Probes now and writes the results at `step`; returns the cosine matrix."""
        grads = self.probe().gradients
        cos = diagnostics.cosine_matrix(grads)
        norms = np.linalg.norm(np.asarray(grads, dtype=np.float64), axis=1)
        names = self.task_names
        self._checks += 1
        self._conflicts += int(any(cos[i, j] < 0 for i, j in diagnostics.pairs(names)))
        for name, norm in zip(names, norms):
            self.writer.scalar(f"{name}/grad_norm", norm, step)
        for i, j in diagnostics.pairs(names):
            self.writer.scalar(f"conflict/cosine/{names[i]}__{names[j]}", cos[i, j], step)
        self.writer.scalar("conflict/share", self._conflicts / self._checks, step)
        self.writer.image("conflict/cosine_matrix", diagnostics.heatmap_image(cos), step)
        return cos


class TaskAffinity(_Probe):
    """Every `every_n_steps` steps: lookahead inter-task affinity on a probe batch, averaged over the run.

    A check is one probe call (`diagnostics.traced_probe` with its
    lookahead: T trial forward passes after the probe's own); the weights
    are never written.

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
        if not learning_rate > 0:
            raise ValueError(f"TaskAffinity needs learning_rate > 0, got {learning_rate}.")
        super().__init__(log_dir, probe, every_n_steps)
        self.learning_rate = float(learning_rate)
        self._sum = None
        self._count = 0

    def check(self, step: int) -> np.ndarray:
        """Measures affinity now, logs it at `step`, and returns the running mean."""
        a = np.asarray(diagnostics.affinity(self.probe(self.learning_rate)), dtype=np.float64)
        self._sum = a if self._sum is None else self._sum + a
        self._count += 1
        names = self.task_names
        for i, src in enumerate(names):
            for j, dst in enumerate(names):
                if i != j:
                    self.writer.scalar(f"affinity/{src}__to__{dst}", a[i, j], step)
        scale = max(np.abs(self.mean).max(), 1e-12)
        self.writer.image("affinity/matrix", diagnostics.heatmap_image(self.mean, -scale, scale), step)
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


class ExpertUtilisation(_MTLWriter):
    """Each epoch: which experts each gate of a MoE model uses, as a gate × expert heatmap.

    Reads the mean gate weights that the gates already log in the training
    step (`<gate>/expert_<i>`), so it costs no extra pass. Writes the image
    `experts/utilisation` (PLE: `experts/utilisation_<level>`; rows are
    gates, columns every expert of the level, white 0 to red 1; a gate gives
    the experts it does not see 0, so rows sum to 1) and
    `<log_dir>/mtl/experts.json` with the same tables for `keras-mtl report`.
    Does nothing for a model without gates.

    Example:
    >>> import tempfile
    >>> ExpertUtilisation(tempfile.mkdtemp()).log_dir.endswith("mtl")
    True
    """

    def on_train_begin(self, logs=None):
        self._layout = gate_layout(self.model)

    def on_epoch_end(self, epoch, logs=None):
        tables = gate_tables(self._layout, logs or {}) if self._layout else []
        if not tables:
            return
        for table in tables:
            level = table.name[len("shared_experts"):]
            # Weights lie in [0, 1]: on the -1..1 scale 0 is white and 1 red.
            self.writer.image(f"experts/utilisation{level}", diagnostics.heatmap_image(table.weights), epoch)
        result = {
            "epoch": epoch,
            "levels": [
                {"name": t.name, "gates": t.gates, "experts": t.experts, "weights": t.weights.tolist()}
                for t in tables
            ],
        }
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(self.log_dir, "experts.json"), "w") as f:
            json.dump(result, f, indent=2)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first non-finite loss or weight and says which task(s) caused it, and when.

    Keras' `TerminateOnNaN` only reports "NaN loss"; with several tasks the
    first question is which one. Raises `FloatingPointError` naming the
    task(s), their values, the epoch and the step.

    A loss can be finite while its gradient is not (e.g. `sqrt` at 0): the
    step then writes NaN into the weights and the loss only turns NaN one
    step later, for every task at once. With `check_weights` (default) the
    error then names the step that wrote the NaN and the tasks whose own
    layers (their tower and output layer, named after the task) it reached,
    i.e. the tasks whose gradients were non-finite. On a `MultiTaskModel` the
    training step records that step and those layers itself
    (`keras_mtl.finite`), and this callback reads the record only when a
    logged loss turns non-finite or an epoch ends, so the weight check costs
    nothing per step (reading a flag back after every step cost 4% of an
    XLA-compiled census-income step); training then stops one step after the
    one that wrote the NaN. Other Keras models get a separate reduction over
    their weights after every step. With `steps_per_execution > 1` losses are
    checked after the last step of each execution.

    Example:
    >>> cb = StopOnNonFiniteLoss()
    >>> cb.check({"loss": 1.0, "a_loss": 0.5}, epoch=0, step=3)
    """

    def __init__(self, check_weights: bool = True):
        super().__init__()
        self.check_weights = bool(check_weights)
        self._epoch = 0
        self._step = 0  # training steps completed in this fit, over all epochs
        self._epoch_start = 0
        self._epoch_starts: dict[int, int] = {}
        self._first_iteration = 0  # the optimizer's step count when this fit began
        self._all_finite = None

    def set_model(self, model):
        super().set_model(model)
        self._all_finite = None  # a reduction over another model's variables
        # Here, before fit makes its train function, so that the step records.
        if self.check_weights:
            finite.enable(model)

    def on_train_begin(self, logs=None):
        self._step = self._epoch_start = 0
        self._epoch_starts = {}
        # A record left by an earlier fit (stopped, or weights since replaced) says nothing of this one.
        finite.clear(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        if not self._epoch_starts:
            # Here, not in on_train_begin: a BackupAndRestore later in the list
            # restores the optimizer's step count in its on_train_begin.
            optimizer = getattr(self.model, "optimizer", None)
            self._first_iteration = (
                int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer is not None else 0
            )
        self._epoch = epoch
        self._epoch_start = self._step
        self._epoch_starts[epoch] = self._step

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last batch of the execution: with steps_per_execution > 1
        # this is called once per execution, not once per step.
        self._step = self._epoch_start + batch + 1
        logs = logs or {}
        # Runs after every step: the common case (finite losses, recorded weights) tests the losses once.
        losses_finite = _losses_finite(logs)
        if self.check_weights and self.model is not None:
            if not finite.recorded(self.model):
                self.check_model_weights(self._epoch, self._step)  # a plain Keras model: every step
            elif not losses_finite:
                # Weights made non-finite by an earlier step with finite losses come first.
                self.check_model_weights(self._epoch, self._step, before=self._step)
        if not losses_finite:
            self.check(logs, self._epoch, self._step)

    def on_epoch_end(self, epoch, logs=None):
        if self.check_weights and self.model is not None and finite.recorded(self.model):
            self.check_model_weights(epoch, self._step)

    def check(self, logs: dict, epoch: int, step: int) -> None:
        """Raises if `logs` holds a non-finite loss."""
        if _losses_finite(logs):
            return
        bad = {
            k[: -len("_loss")]: float(v)
            for k, v in logs.items()
            if k.endswith("_loss") and k != "loss" and not np.isfinite(float(v))
        }
        total = logs.get("loss")
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
            "and their loss scale or learning rate; if every task is named, check the features."
        )

    def _weights_look_finite(self) -> bool:
        if self._all_finite is None:
            # A model whose step records nothing (not a MultiTaskModel): one fused reduction per step.
            variables = finite.float_trainables(self.model)
            self._all_finite = tf.function(
                lambda: tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))
                if variables
                else tf.constant(True)
            )
        return bool(self._all_finite())

    def _epoch_of(self, step: int) -> int:
        starts = [e for e, first in self._epoch_starts.items() if first < step]
        return max(starts) if starts else self._epoch

    def check_model_weights(self, epoch: int, step: int, before: int | None = None) -> None:
        """Raises if a trainable weight is non-finite after a step whose losses were finite.

        On a model whose step records non-finite weights, the error names the
        recorded step and the layers it hit; with `before`, only a record of
        an earlier step than `before` counts (a non-finite loss at `before`
        itself is reported as such).
        """
        if finite.recorded(self.model):
            record = finite.first_nonfinite(self.model)
            if record is None:
                # Tables too large to sum every step are checked here, once an epoch.
                if before is not None or finite.unrecorded_finite(self.model):
                    return
                record = (step + self._first_iteration, _nonfinite_layers(self.model))
            iteration, bad_layers = record
            step = iteration - self._first_iteration
            if before is not None and step >= before:
                return
            epoch = self._epoch_of(step)
            # A record can be a false alarm (a sum of finite weights that overflowed):
            # confirm it on the weights one by one.
            confirmed = _nonfinite_layers(self.model)
            if not confirmed:
                finite.clear(self.model)
                return
            # A weight no layer of the model holds (a weighting method's): named by its path.
            bad_layers = bad_layers or confirmed
        else:
            bad_layers = [] if self._weights_look_finite() else _nonfinite_layers(self.model)
            if not bad_layers:
                return
        self.model.stop_training = True
        names = [t.name for t in getattr(self.model, "tasks", ())]
        tasks = sorted({t for t in (_owning_task(layer, names) for layer in bad_layers) if t})
        layer_names = {layer.name for layer in self.model.layers}
        if tasks:
            which = f"the gradients of task(s) {tasks} were non-finite"
        elif all(name in layer_names for name in bad_layers):
            which = "the gradients of the shared layers were non-finite (no task's own layers are affected)"
        else:
            which = "weights outside the model's layers (e.g. a weighting method's) became non-finite"
        raise FloatingPointError(
            f"Training stopped at epoch {epoch + 1}, step {step}: every loss was finite but {which}; "
            f"layers with non-finite weights after the update: {sorted(bad_layers)}. Check "
            "those tasks' losses for operations with infinite slope (sqrt or log at 0, division by "
            "a label), or lower the learning rate / clip gradients."
        )


def _losses_finite(logs: dict) -> bool:
    # Runs after every step: math.isfinite on a float is ~20x faster than np.isfinite.
    return all(math.isfinite(v) for k, v in logs.items() if k == "loss" or k.endswith("_loss"))


def _nonfinite_layers(model: keras.Model) -> list[str]:
    """Names of the layers (or variable paths) holding a non-finite trainable float weight, read one by one."""
    owner = {id(v): layer.name for layer in model.layers for v in layer.trainable_variables}
    return sorted(
        {owner.get(id(v), v.path) for v in finite.float_trainables(model)
         if not np.all(np.isfinite(keras.ops.convert_to_numpy(v)))}
    )


def _owning_task(layer: str, task_names: Sequence[str]) -> str | None:
    # A task's own layers are its output layer (named after it) and those named
    # `<task>_...` (tower, experts, column); the longest match wins ("a_b" over "a").
    return owning_task(layer, task_names)


def monitoring(
    log_dir: str,
    probe=None,
    *,
    model: keras.Model | None = None,
    conflict_every: int = 100,
    affinity_every: int = 200,
    histogram_freq: int = 0,
    write_graph: bool = False,
) -> list[keras.callbacks.Callback]:
    """The default monitoring callbacks for a run: Keras' TensorBoard plus the MTL ones above.

    Without a probe batch the probes (conflict, affinity) are left out. With
    `model`, `ExpertUtilisation` is added only if the model has gates;
    without it, it is added and finds out when training starts.
    `write_graph=True` also writes TensorBoard's op graph (off by default:
    the report has the architecture diagram instead).

    These only watch. Guarding the run is a separate choice, as in Keras
    (`TensorBoard` and `TerminateOnNaN`): add `StopOnNonFiniteLoss()` to
    stop at the first non-finite loss or weight with the task and step named
    (`keras-mtl train` always does, with or without monitoring).

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> plain = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
    >>> [type(c).__name__ for c in monitoring(tempfile.mkdtemp(), model=plain)]
    ['TensorBoard', 'TaskScalars']
    """
    callbacks: list = [
        # write_graph off by default: writing the op graph took 0.1-0.25 s at
        # the first step of every census-income fit, and keras_mtl.diagram
        # draws the architecture for the report instead.
        TensorBoard(log_dir=str(log_dir), histogram_freq=histogram_freq, write_graph=write_graph),
        TaskScalars(log_dir),
    ]
    if model is None or gate_layout(model):
        callbacks.append(ExpertUtilisation(log_dir))
    if probe is not None:
        # Affinity first: where both are due, the conflict check reuses its probe call.
        if affinity_every:
            callbacks.append(TaskAffinity(log_dir, probe, every_n_steps=affinity_every))
        if conflict_every:
            callbacks.append(GradientConflict(log_dir, probe, every_n_steps=conflict_every))
    return callbacks


__all__: Sequence[str] = [
    "ExpertUtilisation",
    "GradientConflict",
    "StopOnNonFiniteLoss",
    "TaskAffinity",
    "TaskScalars",
    "TensorBoard",
    "monitoring",
]
