"""The single-task baseline: the same trunk, one task."""

from __future__ import annotations

from typing import Callable

from keras_mtl._model import MultiTaskModel
from keras_mtl.models._shared_bottom import shared_bottom
from keras_mtl.tasks import Task


def single_task(
    inputs, task: Task, trunk: Callable | None = None, *, name: str | None = None
) -> MultiTaskModel:
    """A model for one task with the trunk a multi-task model would share.

    Train one per task to measure what sharing gains (or costs). It can be
    fed the multi-task dataset as it is: labels of other tasks are ignored.

    Example:
    >>> import keras, keras_mtl as mtl
    >>> model = single_task(keras.Input((4,)), mtl.tasks.Regression("y"))
    >>> model.output_names
    ['y']
    """
    if not isinstance(task, Task):
        given = f"a {type(task).__name__} of {len(task)}" if isinstance(task, (list, tuple)) else repr(task)
        raise TypeError(f"single_task takes one Task, got {given}: build one single_task model per task.")
    return shared_bottom(
        inputs, [task], trunk, name=name or f"single_task_{task.name}", unknown_labels="ignore"
    )
