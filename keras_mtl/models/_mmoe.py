"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): CGC with no task-specific experts."""

from __future__ import annotations

from typing import Callable, Sequence

from keras_mtl._model import MultiTaskModel
from keras_mtl.models._cgc import cgc_model
from keras_mtl.tasks import Task


def mmoe(
    inputs,
    tasks: Sequence[Task],
    trunk: Callable | None = None,
    *,
    num_experts: int = 8,
    expert_units: Sequence[int] = (64,),
    tower: Sequence[int] = (),
    gate_metrics: bool = True,
    name: str = "mmoe",
    **model_kwargs,
) -> MultiTaskModel:
    """MMoE: shared experts, one softmax gate per task, a gated mixture per task.

    The trunk's pooled output feeds `num_experts` experts (layer
    `shared_experts`, each a Dense stack of `expert_units`) and one gate per
    task (`<task>_gate`, on the same trunk output); each task's head reads
    its gate-weighted sum of the experts (`<task>_mixture`), through
    `tower` first if given.

    `model.representation` is an Identity layer named "representation" over
    the stacked expert outputs, shape (batch, num_experts, expert_units[-1]):
    the one tensor every task reads. The gates also read the trunk output,
    so shared trunk weights reach the tasks through the gates too: a
    gradient method's `mode="representation"` is exact, and accepted, only
    on a trunk without weights (`trunks.mlp([])`, or a tabular trunk with
    no Dense layers), as in the paper. `model.shared_layers` holds the trunk and `shared_experts`.

    While training, `fit` logs each gate's mean weight per expert and its
    entropy: `<task>_gate/expert_<i>`, `<task>_gate/entropy`.

    Args:
        inputs: a `keras.Input` or a dict of them.
        tasks: the tasks, one output each (not `Tagging`: experts mix one
            pooled vector per example).
        trunk: a trunk from `keras_mtl.trunks`; default `trunks.mlp()`.
            `trunks.mlp([])` feeds the (concatenated) inputs straight to the
            experts and gates, as in the paper.
        num_experts: number of shared experts (>= 1).
        expert_units: widths of each expert's Dense layers.
        tower: widths of Dense layers per task between its mixture and its
            head (the paper's task towers); a task's own `tower` follows them.
        gate_metrics: log the gate statistics while training.
        name: model name.
        **model_kwargs: passed to `MultiTaskModel` (e.g. `unknown_labels`).

    Example:
    >>> import keras, keras_mtl as mtl
    >>> model = mmoe(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")],
    ...              trunk=mtl.trunks.mlp([8]), num_experts=3, expert_units=[6])
    >>> {name: out.shape for name, out in model.output.items()}
    {'a': (None, 1), 'b': (None, 1)}
    >>> model.get_layer(model.representation).output.shape
    (None, 3, 6)
    """
    # MMoE is CGC without task-specific experts: the same code path, layers and layer names.
    return cgc_model(
        inputs,
        tasks,
        trunk,
        num_experts=num_experts,
        num_task_experts=0,
        expert_units=expert_units,
        tower=tower,
        gate_metrics=gate_metrics,
        name=name,
        architecture="mmoe",
        **model_kwargs,
    )


__all__ = ["mmoe"]
