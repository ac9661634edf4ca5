"""Progressive Layered Extraction (Tang et al., RecSys 2020): stacked CGC levels."""

from __future__ import annotations

from typing import Callable, Sequence

from keras_mtl import _checks, trunks
from keras_mtl._model import MultiTaskModel
from keras_mtl.models import _moe
from keras_mtl.models._build import build_model, pooled_features
from keras_mtl.tasks import Task, check_unique


def ple(
    inputs,
    tasks: Sequence[Task],
    trunk: Callable | None = None,
    *,
    num_levels: int = 2,
    num_experts: int = 4,
    num_task_experts: int = 2,
    expert_units: Sequence[int] = (64,),
    tower: Sequence[int] = (),
    gate_metrics: bool = True,
    name: str = "ple",
    **model_kwargs,
) -> MultiTaskModel:
    """PLE: `num_levels` CGC levels, each level's mixtures feeding the next.

    Every level has shared experts and experts per task (as in `cgc`). Task
    t's gate mixes the shared experts and t's own, giving t's input to the
    next level. At every level but the last a shared gate over *all* of
    that level's experts (shared first, then each task's in task order)
    gives the shared experts' input at the next level. The first level
    reads the trunk's pooled output; the last level's task mixtures feed
    the heads (through `tower` first if given). `num_levels=1` is `cgc`,
    layer for layer.

    Layer names carry the level when there are several:
    `shared_experts_<l>`, `<task>_experts_<l>`, `<task>_gate_<l>`,
    `shared_gate_<l>`, ...; with one level they are cgc's names.

    `model.representation` is an Identity named "representation" over the
    last level's stacked shared expert outputs, which every task's last
    gate mixes. `model.shared_layers` is read off the graph as for every
    architecture: the trunk, the shared experts and gates, and what feeds
    the shared gates from lower levels (tasks' experts included).

    While training, `fit` logs every gate's mean weight per expert and its
    entropy, e.g. `income_gate_1/expert_0`, `shared_gate_0/entropy`.

    Args:
        inputs: a `keras.Input` or a dict of them.
        tasks: the tasks, one output each (not `Tagging`).
        trunk: a trunk from `keras_mtl.trunks`; default `trunks.mlp()`.
        num_levels: number of extraction levels (>= 1).
        num_experts: number of shared experts per level (>= 1).
        num_task_experts: number of experts per task and level (>= 0).
        expert_units: widths of each expert's Dense layers (every level).
        tower: widths of Dense layers per task between its last mixture and its head.
        gate_metrics: log the gate statistics while training.
        name: model name.
        **model_kwargs: passed to `MultiTaskModel`.

    Example:
    >>> import keras, keras_mtl as mtl
    >>> model = ple(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")],
    ...             trunk=mtl.trunks.mlp([8]), num_levels=2, num_experts=2, num_task_experts=1,
    ...             expert_units=[4])
    >>> model.get_layer("shared_gate_0").num_experts  # 2 shared + 1 per task
    4
    """
    tasks = check_unique(tasks)
    num_levels = _checks.int_at_least(num_levels, 1, "num_levels", "ple")
    num_experts = _checks.int_at_least(num_experts, 1, "num_experts", "ple")
    num_task_experts = _checks.int_at_least(num_task_experts, 0, "num_task_experts", "ple")
    expert_units = _checks.units(expert_units, "expert_units", "ple")
    tower = _moe.check_tower(tower, "ple")
    names = _moe.check_task_names(tasks, "ple")
    x = pooled_features((trunk or trunks.mlp())(inputs), tasks, "ple")
    task_inputs, shared_input = {task: x for task in names}, x
    for level in range(num_levels):
        task_inputs, shared_input = _moe.extraction_level(
            task_inputs,
            shared_input,
            num_experts=num_experts,
            num_task_experts=num_task_experts,
            expert_units=expert_units,
            suffix="" if num_levels == 1 else f"_{level}",
            last=level == num_levels - 1,
            gate_metrics=gate_metrics,
        )
    features = _moe.task_towers(task_inputs, tower)
    return build_model(inputs, tasks, None, name, features=features, **model_kwargs)
