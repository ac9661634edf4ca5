"""The building block of MMoE, CGC and PLE: experts, one gate per task, gated mixtures."""

from __future__ import annotations

from typing import Mapping, Sequence

import keras

from keras_mtl import _checks
from keras_mtl.layers import Experts, Gate, MixExperts
from keras_mtl.models._build import mark_representation
from keras_mtl.tasks import Task

SHARED = "shared"


def check_task_names(tasks: Sequence[Task], architecture: str) -> list[str]:
    """Task names, refusing one that would clash with the shared experts' layer names.

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> check_task_names([Binary("a"), Binary("b")], "cgc")
    ['a', 'b']
    """
    names = [t.name for t in tasks]
    if SHARED in names:
        raise ValueError(
            f"{architecture}: a task may not be called {SHARED!r}; that name prefixes the "
            "shared experts and gates."
        )
    return names


def extraction_level(
    task_inputs: Mapping[str, keras.KerasTensor],
    shared_input: keras.KerasTensor,
    *,
    num_experts: int,
    num_task_experts: int,
    expert_units: Sequence[int],
    suffix: str = "",
    last: bool = True,
    gate_metrics: bool = True,
) -> tuple[dict[str, keras.KerasTensor], keras.KerasTensor | None]:
    """One Customized Gate Control level (Tang et al., 2020); MMoE when `num_task_experts=0`.

    `num_experts` shared experts read `shared_input`; each task has
    `num_task_experts` experts of its own on its input. Task t's gate, on
    its input, weighs the shared experts and then its own (so expert
    indices 0..num_experts-1 are the shared ones in every gate). Unless
    this is the `last` level, a shared gate on `shared_input` weighs the
    shared experts and then every task's, making the next level's shared
    input. On the last level the shared experts' output is marked as the
    model's "representation".

    Layer names: `shared_experts<suffix>`, `<task>_experts<suffix>`,
    `<task>_gate<suffix>`, `<task>_mixture<suffix>`, and `shared_gate<suffix>`,
    `shared_mixture<suffix>`.

    Returns `({task: mixture}, shared mixture or None)`.

    Example:
    >>> x = keras.Input((6,))
    >>> outs, shared = extraction_level({"a": x, "b": x}, x, num_experts=2, num_task_experts=1,
    ...                                 expert_units=[4], last=False)
    >>> outs["a"].shape, shared.shape
    ((None, 4), (None, 4))
    """
    shared = Experts(num_experts, expert_units, name=f"{SHARED}_experts{suffix}")(shared_input)
    if last:
        # Every task's final gate mixes these experts: the representation
        # all tasks share. An Identity, so it costs nothing.
        shared = mark_representation(shared)["pooled"]
    own = {
        task: Experts(num_task_experts, expert_units, name=f"{task}_experts{suffix}")(x)
        for task, x in task_inputs.items()
        if num_task_experts
    }

    def mixture(prefix: str, gate_input, experts: list):
        count = sum(int(e.shape[1]) for e in experts)
        weights = Gate(count, statistics=gate_metrics, name=f"{prefix}_gate{suffix}")(gate_input)
        return MixExperts(name=f"{prefix}_mixture{suffix}")(weights, experts)

    outputs = {
        task: mixture(task, x, [shared] + ([own[task]] if task in own else []))
        for task, x in task_inputs.items()
    }
    shared_out = None if last else mixture(SHARED, shared_input, [shared] + list(own.values()))
    return outputs, shared_out


def task_towers(features: Mapping[str, keras.KerasTensor], tower: Sequence[int]) -> dict:
    """Dense+ReLU layers `<task>_moe_tower_<i>` on each task's mixture (the papers' task towers).

    Example:
    >>> task_towers({"a": keras.Input((8,))}, [4])["a"].shape
    (None, 4)
    """
    out = {}
    for task, h in features.items():
        for i, width in enumerate(tower):
            h = keras.layers.Dense(width, activation="relu", name=f"{task}_moe_tower_{i}")(h)
        out[task] = h
    return out


def check_tower(tower: Sequence[int], architecture: str) -> list[int]:
    """The factory-level tower widths (may be empty), each a positive integer.

    Example:
    >>> check_tower((), "mmoe")
    []
    """
    if isinstance(tower, (str, bytes)) or not isinstance(tower, Sequence):
        raise ValueError(f"{architecture}: tower must be a list of positive integers, got {tower!r}.")
    return [_checks.int_at_least(w, 1, f"tower[{i}]", architecture) for i, w in enumerate(tower)]
