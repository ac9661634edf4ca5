"""`PerTaskEarlyStopping`: each task stops training when it stops improving; the others go on."""

from __future__ import annotations

import numbers
from typing import Mapping

import numpy as np

from keras_mtl import _compat
from keras_mtl.callbacks._per_task import PerTaskCallback


class PerTaskEarlyStopping(PerTaskCallback):
    """Stops each task once its validation metric has stopped improving, while the other tasks train on.

    After each epoch, a task whose monitored value (default
    `val_<task>_loss`) has not improved by more than `min_delta` for
    `patience` epochs in a row is stopped: its own layers (those only its
    output depends on: head, tower, gate, task experts) get back the weights
    of its best epoch (`restore_best_weights`) and are frozen, and its loss
    no longer trains the model: it is still computed and logged
    (`<task>_loss`), but sends no gradient to the shared layers. The shared
    layers go on learning for the tasks still training, so a stopped task's
    outputs can still move through them. When every task has stopped, `fit`
    stops.

    At the end of `fit` the frozen layers are trainable again, ready for
    another `fit`; `stopped_epochs` keeps when each task stopped (0-based
    epochs, like Keras'), and `best_values` their best values.

    Loss-based weighting methods work with it; gradient-based ones
    (`pcgrad`, `mgda`, ...) are refused, since a stopped task has no
    gradient for them to combine.

    Args:
        monitor: `{task: log key}` for tasks not monitored by `val_<task>_loss`.
        mode: `"auto"`, `"min"` or `"max"`, or `{task: mode}`.
        patience: epochs without improvement before a task stops (>= 1).
        min_delta: the smallest change that counts as an improvement.
        restore_best_weights: give a stopped task's own layers their weights
            from its best epoch.

    Example:
    >>> import keras, numpy as np, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")])
    >>> model.compile(optimizer="adam")
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> y = {"a": (x[:, 0] > 0.5).astype("float32"), "b": x[:, 1]}
    >>> stopping = PerTaskEarlyStopping(monitor={"a": "val_a_auc"}, patience=2)
    >>> _ = model.fit(x, y, validation_data=(x, y), epochs=3, callbacks=[stopping], verbose=0)
    >>> set(stopping.stopped_epochs) <= {"a", "b"}
    True
    """

    def __init__(
        self,
        monitor: Mapping[str, str] | None = None,
        mode: str | Mapping[str, str] = "auto",
        patience: int = 2,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ):
        super().__init__(monitor, mode)
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
            raise ValueError(f"PerTaskEarlyStopping: patience must be an integer >= 1, got {patience!r}.")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not 0 <= min_delta < float("inf"):
            raise ValueError(f"PerTaskEarlyStopping: min_delta must be a finite number >= 0, got {min_delta!r}.")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best_weights = bool(restore_best_weights)
        self._start()

    def _start(self) -> None:
        self.stopped_epochs: dict[str, int] = {}
        self.best_values: dict[str, float] = {}
        self._wait: dict[str, int] = {}
        self._best_weights: dict[str, dict] = {}
        self._frozen: list[str] = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        weighting = getattr(self.model, "weighting", None)
        if weighting is not None and weighting.uses_gradients:
            raise ValueError(
                f"PerTaskEarlyStopping works with loss-based weighting methods; {type(weighting).__name__} "
                "combines task gradients, and a stopped task has none. Use fixed, uncertainty, dwa, ..."
            )
        self._start()
        self._stop([])

    def on_epoch_end(self, epoch, logs=None):
        values = self.monitored(epoch, logs)
        if values is None:
            return
        newly = []
        for value, (task, (_, lower)) in zip(values, self._monitors.items()):
            if task in self.stopped_epochs:
                continue
            best = self.best_values.get(task)
            gain = (best - value if lower else value - best) if best is not None else np.inf
            if gain > self.min_delta:  # NaN is never an improvement
                self.best_values[task], self._wait[task] = float(value), 0
                if self.restore_best_weights:
                    self._best_weights[task] = self._layer_weights(self._own[task])
                continue
            self._wait[task] = self._wait.get(task, 0) + 1
            if self._wait[task] >= self.patience:
                newly.append(task)
                self.stopped_epochs[task] = epoch
        if newly:
            self._stop(newly)

    def _stop(self, tasks: list[str]) -> None:
        for task in tasks:
            for name, weights in self._best_weights.get(task, {}).items():
                self.model.get_layer(name).set_weights(weights)
            for name in self._own[task]:
                layer = self.model.get_layer(name)
                if layer.trainable:
                    layer.trainable = False
                    self._frozen.append(name)
        # Read by MultiTaskModel.task_losses while the step is traced.
        _compat.set_untracked(self.model, "_stopped_tasks", frozenset(self.stopped_epochs))
        if self.stopped_epochs and len(self.stopped_epochs) == len(self._monitors):
            self.model.stop_training = True
        elif tasks:
            # The next step leaves out the frozen variables and the stopped losses.
            self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        for name in self._frozen:
            self.model.get_layer(name).trainable = True
        self._frozen = []
        _compat.set_untracked(self.model, "_stopped_tasks", frozenset())
        # The cached step froze layers that are trainable again.
        self.model.train_function = None


__all__ = ["PerTaskEarlyStopping"]
