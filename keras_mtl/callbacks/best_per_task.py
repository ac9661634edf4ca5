"""`BestPerTask`: each task's best epoch, and one model made of every task's best weights."""

from __future__ import annotations

import numbers
from typing import Mapping

import keras
import numpy as np

from keras_mtl.callbacks._per_task import PerTaskCallback
from keras_mtl.saving import copy_model

_KEYWORDS = ("mean_rank", "last")


class BestPerTask(PerTaskCallback):
    """Keeps each task's best epoch in memory and assembles one model from them.

    Tasks of one model rarely peak at the same epoch. Each epoch this
    callback reads one monitored value per task and, where it may be needed
    later, copies the weights of the model's layers into host memory (numpy
    arrays). After `fit`, `assemble()` returns a new model in which every
    task's own layers (those only that task's output depends on: its head,
    tower, gate, task experts) hold their weights from that task's best
    epoch, and every other layer (shared trunk, shared experts) those of one
    epoch you choose:

    - `"mean_rank"` (default): the epoch with the best mean rank over tasks
      (each task ranks the recorded epochs by its monitored value, 1 = best,
      tied values share the mean of their ranks; ties between epochs go to
      the earliest);
    - `"last"`: the last recorded epoch;
    - a task name: that task's best epoch;
    - an epoch index (an int, 0-based like the `epoch` Keras passes to callbacks).

    Which layers are a task's own is read from the model's graph (a layer
    that only one task's output depends on is that task's): in a
    shared-bottom model the heads and towers, in MMoE and CGC also the gates
    and task experts.

    Weights kept: those of every epoch that is some task's best, of the last
    epoch, and of every epoch that no other epoch matches or beats on every
    task (the Pareto front; the mean-rank epoch is always among them, since
    an epoch beaten on every task always ranks worse). So `"mean_rank"`,
    `"last"` and task names always work; an int epoch works when its weights
    were kept (`kept_epochs`), or for every epoch with `keep_all=True`. The
    history of monitored values is kept for every epoch.

    Each task's best value is the first that no later epoch beats (ties go
    to the earliest epoch, like `keras.callbacks.ModelCheckpoint`); a NaN
    value is the worst. An epoch whose logs have no validation keys at all
    (no `validation_data`, or not a `validation_freq` epoch) is skipped with
    a warning. A `fit` that counts epochs from an epoch already recorded (a
    second `fit` without `initial_epoch`) starts the record afresh; so does
    a callback given another model.

    The assembled model is a copy of the model (`keras_mtl.saving.copy_model`:
    same architecture and preprocessing state). When the model is compiled it
    is compiled again from the model's compile config, with a fresh optimizer
    and loss weighting (their state belongs to the last step, not to the
    epochs chosen); otherwise it is left uncompiled.

    Args:
        monitor: `{task: log key}` for the tasks not monitored by the default
            `val_<task>_loss`, e.g. `{"income": "val_income_auc"}`.
        mode: `"auto"` (default), `"min"` or `"max"`, or `{task: mode}`.
            `"auto"` minimises losses and errors (keys ending in `loss`,
            `mae`, `mse`, `rmse`, `error`, `crossentropy`, ...) and maximises
            `auc`, `accuracy`, `acc`, `precision`, `recall`, ...; for any other
            metric give the mode.
        keep_all: keep the weights of every epoch, so that `assemble` takes
            any recorded epoch for the trunk (memory: one copy of the
            weights per epoch).

    Example:
    >>> import numpy as np, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")])
    >>> model.compile(optimizer="adam")
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> y = {"a": (x[:, :1] > 0.5).astype("float32"), "b": x[:, 1:2]}
    >>> best = BestPerTask(monitor={"a": "val_a_auc"})
    >>> _ = model.fit(x, y, validation_data=(x, y), epochs=3, callbacks=[best], verbose=0)
    >>> sorted(best.best_epochs), set(best.best_epochs.values()) <= set(best.kept_epochs)
    (['a', 'b'], True)
    >>> assembled = best.assemble(trunk="mean_rank")
    >>> assembled is not model, assembled.compiled
    (True, True)
    """

    def __init__(
        self,
        monitor: Mapping[str, str] | None = None,
        mode: str | Mapping[str, str] = "auto",
        keep_all: bool = False,
    ):
        super().__init__(monitor, mode)
        self.keep_all = bool(keep_all)
        self._reset()

    def _reset(self) -> None:
        self._values: dict[int, np.ndarray] = {}  # epoch -> monitored values, in task order
        self._weights: dict[int, dict[str, list[np.ndarray]]] = {}  # epoch -> {layer: weights}

    _new_model = _reset

    # ------------------------------------------------------------- recording
    def on_epoch_end(self, epoch, logs=None):
        values = self.monitored(epoch, logs)
        if values is None:
            return
        if self._values and epoch <= max(self._values):
            self._reset()  # a new fit counting from an epoch already recorded
        self._values[epoch] = values
        self._weights[epoch] = self._layer_weights(self._layers)
        if not self.keep_all:
            keep = self._needed()
            self._weights = {e: w for e, w in self._weights.items() if e in keep}

    def _scores(self) -> tuple[list[int], np.ndarray]:
        """The recorded epochs, and their values as `(epochs, tasks)` scores where lower is better and NaN worst."""
        epochs = sorted(self._values)
        values = np.stack([self._values[e] for e in epochs])
        lower = np.array([lower for _, lower in self._monitors.values()])
        scores = np.where(lower, values, -values)
        return epochs, np.where(np.isnan(scores), np.inf, scores)

    def _needed(self) -> set[int]:
        """Epochs whose weights `assemble` may need: task bests, the last, and the Pareto front."""
        epochs, s = self._scores()
        # beats[j, i]: epoch j is no worse than epoch i on every task, and better on one or earlier.
        no_worse = np.all(s[:, None, :] <= s[None, :, :], axis=-1)
        better = np.any(s[:, None, :] < s[None, :, :], axis=-1)
        earlier = np.arange(len(epochs))[:, None] < np.arange(len(epochs))[None, :]
        beaten = np.any(no_worse & (better | earlier), axis=0)
        front = {e for e, b in zip(epochs, beaten) if not b}
        return front | set(self.best_epochs.values()) | {epochs[-1]}

    # --------------------------------------------------------------- results
    @property
    def best_epochs(self) -> dict[str, int]:
        """`{task: epoch}`: the epoch (0-based) of each task's best monitored value."""
        if not self._values:
            return {}
        epochs, s = self._scores()
        return {task: epochs[int(np.argmin(s[:, i]))] for i, task in enumerate(self._monitors)}

    @property
    def best_values(self) -> dict[str, float]:
        """`{task: value}`: each task's best monitored value, as logged."""
        order = list(self._monitors)
        return {task: float(self._values[e][order.index(task)]) for task, e in self.best_epochs.items()}

    @property
    def mean_rank_epoch(self) -> int | None:
        """The epoch with the best mean rank over tasks (ties: the earliest); None before any epoch."""
        if not self._values:
            return None
        epochs, s = self._scores()
        # Doubled ranks, exact: 2 * (number of better epochs) + (number of tied others).
        better = np.sum(s[None, :, :] < s[:, None, :], axis=1)
        ties = np.sum(s[None, :, :] == s[:, None, :], axis=1) - 1
        return epochs[int(np.argmin(np.sum(2 * better + ties, axis=1)))]

    @property
    def kept_epochs(self) -> list[int]:
        """The epochs whose weights are kept, i.e. that `assemble(trunk=<int>)` takes."""
        return sorted(self._weights)

    def assemble(self, trunk: str | int = "mean_rank") -> keras.Model:
        """A new model: each task's own layers from its best epoch, every other layer from `trunk`'s epoch.

        Args:
            trunk: which epoch the shared layers come from: `"mean_rank"`,
                `"last"`, a task name (its best epoch) or an epoch index.
        """
        if not self._values:
            raise ValueError(
                "BestPerTask has recorded no epoch: pass it to model.fit(..., validation_data=..., "
                "callbacks=[...]) first."
            )
        epoch = self._trunk_epoch(trunk)
        source = dict.fromkeys(self._layers, epoch)
        for task, best in self.best_epochs.items():
            source.update(dict.fromkeys(self._own[task], best))
        assembled = copy_model(self.model)
        for name, e in source.items():
            assembled.get_layer(name).set_weights(self._weights[e][name])
        config = self.model.get_compile_config()
        if config:
            assembled.compile_from_config(config)
        return assembled

    def _trunk_epoch(self, trunk) -> int:
        names = list(self._monitors)
        if isinstance(trunk, str):
            if trunk in _KEYWORDS and trunk in names:
                raise ValueError(
                    f"trunk={trunk!r} is both a keyword and a task of the model; for the task's best epoch "
                    f"pass the epoch: trunk=best.best_epochs[{trunk!r}]."
                )
            if trunk == "mean_rank":
                return self.mean_rank_epoch
            if trunk == "last":
                return max(self._values)
            if trunk in names:
                return self.best_epochs[trunk]
            raise ValueError(
                f"trunk={trunk!r} is neither 'mean_rank', 'last', a task of model {self.model.name!r} "
                f"({names}) nor an epoch index."
            )
        if isinstance(trunk, bool) or not isinstance(trunk, numbers.Integral):
            raise TypeError(f"trunk must be 'mean_rank', 'last', a task name or an epoch index (int); got {trunk!r}.")
        epoch = int(trunk)
        if epoch not in self._values:
            raise ValueError(f"trunk epoch {epoch} was not recorded; the recorded epochs are {sorted(self._values)}.")
        if epoch not in self._weights:
            raise ValueError(
                f"The weights of trunk epoch {epoch} were not kept: without keep_all=True, BestPerTask keeps "
                f"each task's best epoch, the last and the Pareto front, here epochs {self.kept_epochs}. "
                "Choose one of them, or pass keep_all=True to keep every epoch."
            )
        return epoch


__all__ = ["BestPerTask"]
