"""Customized Gate Control (Tang et al., RecSys 2020, the PLE paper's single-level model)."""

from __future__ import annotations

from typing import Callable, Sequence

from keras_mtl import _checks, trunks
from keras_mtl._model import MultiTaskModel
from keras_mtl.models import _moe
from keras_mtl.models._build import build_model, pooled_features
from keras_mtl.tasks import Task, check_unique


def cgc(
    inputs,
    tasks: Sequence[Task],
    trunk: Callable | None = None,
    *,
    num_experts: int = 4,
    num_task_experts: int = 2,
    expert_units: Sequence[int] = (64,),
    tower: Sequence[int] = (),
    gate_metrics: bool = True,
    name: str = "cgc",
    **model_kwargs,
) -> MultiTaskModel:
    """CGC: shared experts plus experts of each task's own; each task's gate mixes both.

    On the trunk's pooled output sit `num_experts` shared experts
    (`shared_experts`) and, per task, `num_task_experts` experts of its own
    (`<task>_experts`). Task t's gate (`<task>_gate`) weighs the shared
    experts (indices 0..num_experts-1) and then t's own; its head reads
    that mixture (`<task>_mixture`), through `tower` first if given. Unlike
    MMoE, a task's own experts are trained by that task alone, which is
    what reduces the seesaw between tasks. `ple(num_levels=1)` builds the
    same model.

    `model.representation` is an Identity named "representation" over the
    stacked shared expert outputs, (batch, num_experts, expert_units[-1]);
    the gates and task experts also read the trunk output directly.
    `model.shared_layers` holds the trunk and `shared_experts`.

    While training, `fit` logs `<task>_gate/expert_<i>` and `<task>_gate/entropy`.

    Args:
        inputs: a `keras.Input` or a dict of them.
        tasks: the tasks, one output each (not `Tagging`).
        trunk: a trunk from `keras_mtl.trunks`; default `trunks.mlp()`.
        num_experts: number of shared experts (>= 1).
        num_task_experts: number of experts per task (>= 0; 0 is MMoE).
        expert_units: widths of each expert's Dense layers.
        tower: widths of Dense layers per task between its mixture and its head.
        gate_metrics: log the gate statistics while training.
        name: model name.
        **model_kwargs: passed to `MultiTaskModel`.

    Example:
    >>> import keras, keras_mtl as mtl
    >>> model = cgc(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")],
    ...             trunk=mtl.trunks.mlp([8]), num_experts=2, num_task_experts=1, expert_units=[4])
    >>> model.get_layer("a_gate").num_experts  # 2 shared + 1 own
    3
    """
    return cgc_model(
        inputs,
        tasks,
        trunk,
        num_experts=num_experts,
        num_task_experts=num_task_experts,
        expert_units=expert_units,
        tower=tower,
        gate_metrics=gate_metrics,
        name=name,
        architecture="cgc",
        **model_kwargs,
    )


def cgc_model(
    inputs,
    tasks: Sequence[Task],
    trunk: Callable | None,
    *,
    num_experts: int,
    num_task_experts: int,
    expert_units: Sequence[int],
    tower: Sequence[int],
    gate_metrics: bool,
    name: str,
    architecture: str,
    **model_kwargs,
) -> MultiTaskModel:
    """`cgc`'s model; `architecture` names the factory the caller used in error messages (`mmoe` builds it too).

    Example:
    >>> import keras, keras_mtl as mtl
    >>> model = cgc_model(keras.Input((4,)), [mtl.tasks.Binary("a")], mtl.trunks.mlp([]), num_experts=2,
    ...                   num_task_experts=0, expert_units=[4], tower=[], gate_metrics=False,
    ...                   name="m", architecture="mmoe")
    >>> model.get_layer("a_gate").num_experts
    2
    """
    tasks = check_unique(tasks)
    num_experts = _checks.int_at_least(num_experts, 1, "num_experts", architecture)
    num_task_experts = _checks.int_at_least(num_task_experts, 0, "num_task_experts", architecture)
    expert_units = _checks.units(expert_units, "expert_units", architecture)
    tower = _moe.check_tower(tower, architecture)
    names = _moe.check_task_names(tasks, architecture)
    x = pooled_features((trunk or trunks.mlp())(inputs), tasks, architecture)
    mixtures, _ = _moe.extraction_level(
        {task: x for task in names},
        x,
        num_experts=num_experts,
        num_task_experts=num_task_experts,
        expert_units=expert_units,
        gate_metrics=gate_metrics,
    )
    features = _moe.task_towers(mixtures, tower)
    return build_model(inputs, tasks, None, name, features=features, **model_kwargs)


__all__ = ["cgc", "cgc_model"]
