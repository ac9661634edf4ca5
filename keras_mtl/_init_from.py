"""`model.init_from` of a run config: start a run from a trained model, adding the config's new tasks."""

from __future__ import annotations

from pathlib import Path

from keras_mtl import saving
from keras_mtl._model import MultiTaskModel
from keras_mtl.config import ConfigError

CHECKPOINT = "best.keras"


def checkpoint_file(init_from: str) -> Path:
    """The `.keras` file `model.init_from` names: the file itself, or a run's checkpoint folder's `best.keras`.

    Example:
    >>> checkpoint_file("nowhere/best.keras")
    Traceback (most recent call last):
    ...
    keras_mtl.config.ConfigError: model.init_from: no file or folder nowhere/best.keras.
    """
    path = Path(init_from)
    if path.is_dir():
        if (path / CHECKPOINT).is_file():
            return path / CHECKPOINT
        if (path / "saved_model.pb").is_file():
            raise ConfigError(
                f"model.init_from: {path} is a SavedModel export, which keeps no Keras layers to train; "
                f"use the run's checkpoint folder (checkpoints/<name>/<run>, holding {CHECKPOINT}) or a .keras file."
            )
        raise ConfigError(f"model.init_from: {path} holds no {CHECKPOINT}; give a run's checkpoint folder or a .keras file.")
    if not path.is_file():
        raise ConfigError(f"model.init_from: no file or folder {path}.")
    if path.suffix != ".keras":
        raise ConfigError(f"model.init_from: {path} is not a .keras file.")
    return path


def _describe(task) -> str:
    return f"{type(task).__name__}({task.units} output(s), label {task.label!r})"


def initial_model(init_from: str, data, tasks: list, freeze: str):
    """`(model, old model)`: the trained model with the config's new tasks added (`models.extend`).

    Refuses a run whose model reads inputs the data lacks, has a task the
    config does not list, or a task the config lists as another type.
    """
    from keras_mtl import models

    path = checkpoint_file(init_from)
    try:
        old = saving.load_model(path)
    except Exception as e:  # a damaged file, a model of another library
        raise ConfigError(f"model.init_from: cannot load {path}: {e}") from e
    if not isinstance(old, MultiTaskModel):
        raise ConfigError(f"model.init_from: {path} is not a keras_mtl model.")
    wanted = set(data.inputs) if isinstance(data.inputs, dict) else set()
    reads = set(old.input) if isinstance(old.input, dict) else set()
    missing = sorted(reads - wanted)
    if missing:
        raise ConfigError(
            f"model.init_from: the model in {path} reads column(s) {missing}, which this config's data "
            f"does not have (it has {sorted(wanted)})."
        )
    by_name = {t.name: t for t in tasks}
    for task in old.tasks:
        mine = by_name.get(task.name)
        if mine is None:
            raise ConfigError(
                f"model.init_from: the model in {path} has task {task.name!r}, which this config does not "
                f"list; list it ({_describe(task)}) to keep it. The config's tasks: {sorted(by_name)}."
            )
        if (type(mine), mine.units, mine.label) != (type(task), task.units, task.label):
            raise ConfigError(
                f"model.init_from: task {task.name!r} is {_describe(task)} in {path} but {_describe(mine)} "
                "in this config."
            )
    kept = {task.name for task in old.tasks}
    new = [t for t in tasks if t.name not in kept]
    model = models.extend(old, new, freeze=freeze) if new else saving.copy_model(old)
    return model, old


__all__ = ["checkpoint_file", "initial_model"]
