"""Soft parameter sharing: per-task columns kept close by an L2 penalty on their differences."""

from __future__ import annotations

from typing import Callable, Sequence

import keras

from keras_mtl import _checks, trunks
from keras_mtl.layers import SoftSharingPenalty
from keras_mtl._model import MultiTaskModel
from keras_mtl.models._build import build_model, mark_representation, pooled_features
from keras_mtl.tasks import Task, check_unique


def soft_sharing(
    inputs,
    tasks: Sequence[Task],
    trunk: Callable | None = None,
    *,
    column_units: Sequence[int] = (64, 32),
    penalty: float = 1e-3,
    name: str = "soft_sharing",
    **model_kwargs,
) -> MultiTaskModel:
    """One column of Dense layers per task, all the same shape, tied by `penalty * sum_{i<j} ||theta_i - theta_j||^2`.

    Every column reads the trunk's pooled output (layers
    `<task>_column_<k>`, widths `column_units`); theta_i is column i's
    weights and the sum runs over every level's kernels and biases (the
    heads stay free: their shapes differ from task to task). A
    `SoftSharingPenalty` layer (`soft_sharing_penalty`) adds the term to
    the model's `losses` (so to `loss` and `val_loss`) and `fit` logs its
    value as `soft_sharing_penalty`. With
    `penalty=0` the columns are independent; as it grows they approach
    hard sharing.

    `model.representation` is the trunk output (an Identity named
    "representation"). No column is shared, so `model.shared_layers` is
    the trunk alone.

    Args:
        inputs: a `keras.Input` or a dict of them.
        tasks: two or more tasks (not `Tagging`).
        trunk: a trunk from `keras_mtl.trunks`; default `trunks.mlp()`.
        column_units: widths of each column's Dense layers.
        penalty: lambda, a finite number >= 0.
        name: model name.
        **model_kwargs: passed to `MultiTaskModel`.

    Example:
    >>> import keras, keras_mtl as mtl
    >>> model = soft_sharing(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")],
    ...                      trunk=mtl.trunks.mlp([8]), column_units=[6], penalty=0.01)
    >>> model.shared_layers
    ['trunk_dense_0']
    """
    tasks = check_unique(tasks)
    _checks.several_tasks(tasks, "soft_sharing", "ties")
    column_units = _checks.units(column_units, "column_units", "soft_sharing")
    penalty = _checks.non_negative(penalty, "penalty", "soft_sharing")
    rep = mark_representation(pooled_features((trunk or trunks.mlp())(inputs), tasks, "soft_sharing"))
    tie = SoftSharingPenalty(penalty, num_columns=len(tasks), name="soft_sharing_penalty")
    features = {}
    for index, t in enumerate(tasks):
        h, levels = rep["pooled"], []
        for level, width in enumerate(column_units):
            h = keras.layers.Dense(width, activation="relu", name=f"{t.name}_column_{level}")(h)
            levels.append(h)
        features[t.name] = tie(levels, index=index)
    return build_model(inputs, tasks, rep, name, features=features, **model_kwargs)
