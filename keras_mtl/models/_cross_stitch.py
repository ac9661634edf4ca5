"""Cross-stitch networks (Misra et al., CVPR 2016): per-task columns mixed after every level."""

from __future__ import annotations

from typing import Callable, Sequence

import keras

from keras_mtl import _checks, trunks
from keras_mtl.layers import CrossStitch
from keras_mtl._model import MultiTaskModel
from keras_mtl.models._build import build_model, mark_representation, pooled_features
from keras_mtl.tasks import Task, check_unique


def cross_stitch(
    inputs,
    tasks: Sequence[Task],
    trunk: Callable | None = None,
    *,
    column_units: Sequence[int] = (64, 32),
    self_weight: float = 0.9,
    name: str = "cross_stitch",
    **model_kwargs,
) -> MultiTaskModel:
    """One column of Dense layers per task; a cross-stitch unit mixes the columns after each level.

    Every column reads the trunk's pooled output and has the same widths
    (`column_units`; layers `<task>_column_<k>`). After level k a
    `CrossStitch` unit (`cross_stitch_<k>`) replaces each column's
    activation by a learned linear combination of all columns',
    x_i <- sum_j alpha_ij x_j, with alpha initialised to `self_weight` on the
    diagonal and (1 - self_weight) / (T - 1) off it. Each head reads its
    column's last mixed activation.

    `model.representation` is the trunk output (an Identity named
    "representation") that all columns read. Through the units every task
    depends on every column, so `model.shared_layers` lists the trunk, all
    columns and all cross-stitch units.

    Args:
        inputs: a `keras.Input` or a dict of them.
        tasks: two or more tasks (not `Tagging`).
        trunk: a trunk from `keras_mtl.trunks`; default `trunks.mlp()`.
            `trunks.mlp([])` starts the columns on the inputs, as in the paper.
        column_units: widths of each column's Dense layers.
        self_weight: initial diagonal of every unit's alpha, in [0, 1].
        name: model name.
        **model_kwargs: passed to `MultiTaskModel`.

    Example:
    >>> import keras, keras_mtl as mtl
    >>> model = cross_stitch(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")],
    ...                      trunk=mtl.trunks.mlp([8]), column_units=[6, 4])
    >>> tuple(model.get_layer("cross_stitch_1").alpha.shape)
    (2, 2)
    """
    tasks = check_unique(tasks)
    _checks.several_tasks(tasks, "cross_stitch", "mixes")
    column_units = _checks.units(column_units, "column_units", "cross_stitch")
    self_weight = _checks.fraction(self_weight, "self_weight", "cross_stitch")
    rep = mark_representation(pooled_features((trunk or trunks.mlp())(inputs), tasks, "cross_stitch"))
    columns = [rep["pooled"]] * len(tasks)
    for level, width in enumerate(column_units):
        columns = [
            keras.layers.Dense(width, activation="relu", name=f"{t.name}_column_{level}")(h)
            for t, h in zip(tasks, columns)
        ]
        columns = CrossStitch(self_weight, name=f"cross_stitch_{level}")(columns)
    features = {t.name: h for t, h in zip(tasks, columns)}
    return build_model(inputs, tasks, rep, name, features=features, **model_kwargs)
