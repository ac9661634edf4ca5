"""Hard parameter sharing: one trunk for all tasks, one head per task."""

from __future__ import annotations

from typing import Callable, Sequence

from keras_mtl import trunks
from keras_mtl._model import MultiTaskModel
from keras_mtl.models._build import build_model, features_for, mark_representation
from keras_mtl.tasks import Task, check_unique


def shared_bottom(
    inputs,
    tasks: Sequence[Task],
    trunk: Callable | None = None,
    *,
    name: str = "shared_bottom",
    **model_kwargs,
) -> MultiTaskModel:
    """Shared-bottom model (Caruana, 1997): every task reads the same trunk output.

    Args:
        inputs: a `keras.Input` or a dict of them (e.g. `data.inputs`).
        tasks: the tasks, one output each.
        trunk: a trunk from `keras_mtl.trunks`; default `trunks.mlp()`.
        name: model name.
        **model_kwargs: passed to `MultiTaskModel` (e.g. `unknown_labels`).

    Example:
    >>> import keras, keras_mtl as mtl
    >>> model = shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")],
    ...                       trunk=mtl.trunks.mlp([8]))
    >>> {name: out.shape for name, out in model.output.items()}
    {'a': (None, 1), 'b': (None, 1)}
    """
    trunk = trunk or trunks.mlp()
    if getattr(trunk, "per_task", False):
        # A representation per task (per-task adapters): each head reads its own,
        # and no one layer is shared by every task's gradient.
        tasks = check_unique(tasks)
        reps = trunk(inputs, tasks)
        features = {t.name: features_for(t, reps[t.name]) for t in tasks}
        return build_model(inputs, tasks, None, name, features=features, representation=None, **model_kwargs)
    rep = mark_representation(trunk(inputs))
    return build_model(inputs, tasks, rep, name, **model_kwargs)
