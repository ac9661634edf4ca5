"""The base of callbacks that follow one monitored value per task: `BestPerTask`, `PerTaskEarlyStopping`."""

from __future__ import annotations

import collections
import warnings
from typing import Mapping

import keras
import numpy as np

from keras_mtl._conditions import log_groups
from keras_mtl._logs import split_log_key
from keras_mtl.models._build import layers_per_output

MODES = ("auto", "min", "max")
# Metric names (or their endings) where a larger value is better; the smaller-is-better
# ones are `keras_mtl.comparison.lower_is_better`'s. Any other metric needs a `mode`.
_HIGHER = (
    "auc", "accuracy", "acc", "precision", "recall", "f1_score", "fbeta_score", "r2_score", "iou", "cosine_similarity",
)


class PerTaskCallback(keras.callbacks.Callback):
    """Reads one value per task from each epoch's logs and knows each task's own layers.

    `monitor` maps tasks to log keys (default `val_<task>_loss`); `mode`
    says whether lower or higher is better (`"auto"` infers it from the
    metric's name). A task's own layers are those with weights that only its
    output depends on (head, tower, gate, task experts); `_layers` lists every
    layer with weights that some output depends on.
    """

    def __init__(self, monitor: Mapping[str, str] | None = None, mode: str | Mapping[str, str] = "auto"):
        super().__init__()
        who = type(self).__name__
        self.monitor = dict(monitor or {})
        bad = {k: v for k, v in self.monitor.items() if not isinstance(v, str)}
        if bad:
            raise TypeError(f"{who}: monitor maps task names to log keys (str); got {bad}.")
        modes = list(mode.values()) if isinstance(mode, Mapping) else [mode]
        if any(m not in MODES for m in modes):
            raise ValueError(f"{who}: mode must be one of {list(MODES)}, or a dict of them by task; got {mode!r}.")
        self.mode = mode if isinstance(mode, str) else dict(mode)
        self._monitors: dict[str, tuple[str, bool]] = {}  # task -> (log key, lower is better)
        self._own: dict[str, list[str]] = {}  # task -> its own layers with weights
        self._layers: list[str] = []  # every layer with weights that an output depends on
        self._warned = False

    def set_model(self, model):
        if not getattr(model, "tasks", None):
            raise TypeError(
                f"{type(self).__name__} needs a keras_mtl.MultiTaskModel (its tasks name what to monitor); "
                f"got {type(model).__name__} {getattr(model, 'name', '')!r}."
            )
        monitors = self._resolve(model)
        if model is not self.model:
            per_task = {
                task: [layer.name for layer in layers if layer.weights]
                for task, layers in layers_per_output(model.input, model.output).items()
            }
            users = collections.Counter(name for names in per_task.values() for name in set(names))
            self._own = {task: [n for n in names if users[n] == 1] for task, names in per_task.items()}
            self._layers = list(dict.fromkeys(n for names in per_task.values() for n in names))
            self._new_model()
        super().set_model(model)
        self._monitors = monitors

    def _new_model(self) -> None:
        """Forgets what was recorded for another model."""

    def _resolve(self, model) -> dict[str, tuple[str, bool]]:
        who = type(self).__name__
        names = [t.name for t in model.tasks]
        for what, given in (("monitor", self.monitor), ("mode", self.mode if isinstance(self.mode, dict) else {})):
            unknown = sorted(set(given) - set(names))
            if unknown:
                raise ValueError(f"{who}: {what} names {unknown}, not task(s) of model {model.name!r}; its tasks are {names}.")
        groups = log_groups(model.tasks)
        resolved = {}
        for name in names:
            key = self.monitor.get(name, f"val_{name}_loss")
            owner = split_log_key(key, groups)
            if owner is not None and owner[1] != name and owner[1] in names:
                raise ValueError(
                    f"{who}: the monitor of task {name!r} is {key!r}, a log of task {owner[1]!r}; "
                    f"monitor one of {name!r}'s own logs (e.g. 'val_{name}_loss')."
                )
            metric = owner[2] if owner is not None else key.removeprefix("val_")
            mode = self.mode.get(name, "auto") if isinstance(self.mode, dict) else self.mode
            resolved[name] = (key, _lower_is_better(who, name, key, metric, mode))
        return resolved

    def on_train_begin(self, logs=None):
        self._warned = False

    def monitored(self, epoch: int, logs) -> np.ndarray | None:
        """The epoch's monitored values in task order, or None (with one warning per fit) when it logged no validation."""
        logs = logs or {}
        keys = [key for key, _ in self._monitors.values()]
        missing = [key for key in keys if key not in logs]
        if not missing:
            return np.array([float(logs[key]) for key in keys])
        validation = sorted(k for k in logs if k.startswith("val_"))
        if not validation and all(k.startswith("val_") for k in missing):
            if not self._warned:
                warnings.warn(
                    f"{type(self).__name__}: epoch {epoch} logged no validation metrics, so it is not recorded; "
                    "pass validation_data to fit to follow each task's validation metric."
                )
                self._warned = True
            return None
        tasks = [task for task, (key, _) in self._monitors.items() if key in missing]
        raise ValueError(
            f"{type(self).__name__}: epoch {epoch}'s logs have no {missing} (the monitor of task(s) {tasks}); "
            f"the validation logs are {validation or 'none'}, all logs {sorted(logs)}. "
            "Name one of them in monitor={task: key}."
        )

    def _layer_weights(self, names) -> dict[str, list[np.ndarray]]:
        """Copies (not views) of the named layers' weights."""
        return {name: [np.array(w) for w in self.model.get_layer(name).get_weights()] for name in names}


def _lower_is_better(who: str, task: str, key: str, metric: str, mode: str) -> bool:
    if mode != "auto":
        return mode == "min"
    # Here, not at the top: keras_mtl.comparison imports keras_mtl.callbacks.
    from keras_mtl.comparison import lower_is_better

    if lower_is_better(metric):
        return True
    if metric.lower().endswith(_HIGHER):
        return False
    raise ValueError(
        f"{who} cannot tell whether a higher or a lower {key!r} (the monitor of task {task!r}) is "
        f"better; pass mode={{{task!r}: 'max'}} or mode={{{task!r}: 'min'}}."
    )
