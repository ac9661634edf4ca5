"""Hard parameter sharing: one trunk for all tasks, one head per task."""

from __future__ import annotations

from typing import Callable, Sequence

from keras_mtl import trunks
from keras_mtl._model import MultiTaskModel
from keras_mtl.models._build import build_model, mark_representation
from keras_mtl.tasks import Task


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
    rep = mark_representation((trunk or trunks.mlp())(inputs))
    return build_model(inputs, tasks, rep, name, **model_kwargs)
