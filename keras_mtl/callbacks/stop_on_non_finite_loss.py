"""`StopOnNonFiniteLoss`: stops at the first non-finite loss or weight, naming the task(s) and the step."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _finite as finite
from keras_mtl._logs import owning_task


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
    (`keras_mtl._finite`), and this callback reads the record only when a
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
        if not losses_finite:
            self._step = self._steps_done()
        if self.check_weights and self.model is not None:
            if not finite.recorded(self.model):
                self.check_model_weights(self._epoch, self._step)  # a plain Keras model: every step
            elif not losses_finite:
                # Weights made non-finite by an earlier step with finite losses come first.
                self.check_model_weights(self._epoch, self._step, before=self._step)
        if not losses_finite:
            self.check(logs, self._epoch, self._step)

    def on_epoch_end(self, epoch, logs=None):
        self._step = self._steps_done()
        if self.check_weights and self.model is not None and finite.recorded(self.model):
            self.check_model_weights(epoch, self._step)

    def _steps_done(self) -> int:
        """Training steps this fit has run, read from the optimizer.

        `batch` overstates them after an execution cut short by the end of
        the data (Keras reports `begin + steps_per_execution - 1`), so they
        are read here, when a step count is reported or an epoch ends.
        """
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not self._epoch_starts:
            return self._step
        return int(keras.ops.convert_to_numpy(optimizer.iterations)) - self._first_iteration

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
        tasks = sorted({t for t in (owning_task(layer, names) for layer in bad_layers) if t})
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


__all__ = ["StopOnNonFiniteLoss"]
