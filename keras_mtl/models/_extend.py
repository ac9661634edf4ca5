"""Adding tasks to a trained model: new heads on its trained trunk."""

from __future__ import annotations

import os
from typing import Sequence

import keras
import tensorflow as tf

from keras_mtl import _encoding as encoding, _task_lora, saving
from keras_mtl._model import MultiTaskModel
from keras_mtl.layers import Gate, MixExperts
from keras_mtl.models._build import REPRESENTATION, features_for, shared_layer_names
from keras_mtl.models._moe import SHARED
from keras_mtl.tasks import Task, check_unique

FREEZE = ("trunk", "none")


def _rep(model: MultiTaskModel) -> dict:
    """The trained model's marked representation, as `mark_representation` returned it."""
    rep = {"pooled": model.get_layer(REPRESENTATION).output}
    sequence = f"{REPRESENTATION}_sequence"
    if any(layer.name == sequence for layer in model.layers):
        rep["sequence"] = model.get_layer(sequence).output
    return rep


def _task_lora_encoder(model: MultiTaskModel):
    """The model's pretrained encoder with per-task adapters (train="task_lora"), or None."""
    from keras_mtl._pretrained import PretrainedEncoder

    found = [layer for layer in model.layers if isinstance(layer, PretrainedEncoder) and layer.train == "task_lora"]
    return found[0] if found else None


def _new_gate(model: MultiTaskModel, task: Task, experts) -> keras.KerasTensor:
    """A new gate and mixture for `task` over a mixture model's shared experts of the last level."""
    if task.uses_sequence:
        raise ValueError(
            f"extend: task {task.name!r} ({type(task).__name__}) needs per-token features, but "
            f"{model.name!r} mixes experts over one pooled vector per example."
        )
    layer, _ = encoding.producer(model.get_layer(REPRESENTATION).input)
    suffix = layer.name[len(f"{SHARED}_experts"):]
    # The shared experts' own input: the trunk output (MMoE, CGC) or the
    # previous level's shared mixture (PLE), which a task new to the model
    # has no mixture of its own for.
    gate_input = layer.input
    statistics = any(isinstance(g, Gate) and g.statistics for g in model.layers)
    weights = Gate(int(experts.shape[1]), statistics=statistics, name=f"{task.name}_gate{suffix}")(gate_input)
    return MixExperts(name=f"{task.name}_mixture{suffix}")(weights, [experts])


def extend(
    model: MultiTaskModel | str | os.PathLike,
    tasks: Sequence[Task],
    *,
    freeze: str = "trunk",
    name: str | None = None,
) -> MultiTaskModel:
    """A new model with a trained model's tasks and trained weights, plus new tasks.

    Each new task gets a head (its `tower`, then its output layer) on the
    trained model's shared representation; on MMoE, CGC and PLE models a gate
    of its own (`<task>_gate`) over the last level's shared experts, then its
    head. Cross-stitch and soft-sharing models give a new task a head on the
    trunk output (their representation), with no column of its own. On a
    model with per-task adapters (`trunks.pretrained(train="task_lora")`) a
    new task gets adapters of its own (`<task>_lora`), its own pass through
    the frozen encoder, and its head: it adds only those parameters. Every
    other layer, and its weights, comes from `model`, which is left as it
    was: the new model is built on a copy.

    Args:
        model: the trained `MultiTaskModel`, or the path of its `.keras` file
            (a checkpoint).
        tasks: the tasks to add; their names must be new to the model.
        freeze: `"trunk"` (default): every layer of `model` (trunk, experts,
            gates, towers and heads) is frozen, so the old tasks' outputs stay
            bit-identical and only the new tasks' layers train. `"none"`:
            everything trains; keep the old tasks by distilling the old
            model's outputs into them (Learning without Forgetting, Li & Hoiem
            2016): `compile(distillation=keras_mtl.distillation.Distillation(old_model, tasks=[...]))`.
        name: the new model's name; default the old one's.

    Example:
    >>> import keras, keras_mtl as mtl
    >>> old = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("click")], trunk=mtl.trunks.mlp([8]))
    >>> new = extend(old, [mtl.tasks.Binary("like", tower=[4])])
    >>> sorted(new.output_names), [layer.name for layer in new.layers if layer.trainable_weights]
    (['click', 'like'], ['like_tower_0', 'like'])
    """
    if isinstance(model, (str, os.PathLike)):
        model = saving.load_model(model)
    if not isinstance(model, MultiTaskModel):
        raise TypeError(f"extend takes a keras_mtl MultiTaskModel (or its .keras file), got {type(model).__name__}.")
    if freeze not in FREEZE:
        raise ValueError(f"extend: freeze must be one of {list(FREEZE)}, got {freeze!r}.")
    if isinstance(tasks, Task):
        tasks = [tasks]
    bad = [repr(t) for t in tasks if not isinstance(t, Task)]
    if bad or not tasks:
        raise TypeError(f"extend: tasks must be a non-empty list of keras_mtl tasks; got {bad or list(tasks)}.")
    old_names = [t.name for t in model.tasks]
    clash = sorted({t.name for t in tasks} & set(old_names))
    if clash:
        raise ValueError(f"extend: the model already has task(s) {clash}; its tasks are {old_names}. Give new tasks new names.")
    taken = {layer.name for layer in model.layers}
    tasks = check_unique(list(tasks))
    for t in tasks:
        if t.name in taken:
            raise ValueError(f"extend: task name {t.name!r} is already the name of a layer of {model.name!r}; choose another.")
    per_task = _task_lora_encoder(model)
    for t in tasks if per_task is not None else ():
        if f"{t.name}_lora" in taken:
            raise ValueError(
                f"extend: task {t.name!r} needs adapters named {t.name + '_lora'!r}, already the name of a "
                f"layer of {model.name!r}; choose another task name."
            )
    if per_task is None and model.representation != REPRESENTATION:
        raise ValueError(
            f"extend: {model.name!r} has no shared representation layer {REPRESENTATION!r} (it records "
            f"{model.representation!r}); build it with a keras_mtl.models factory."
        )
    copy = saving.copy_model(model)
    outputs = dict(copy.output)
    if per_task is not None:
        # Per-task adapters: a new task gets adapters of its own and its own
        # pass through the (frozen) encoder; nothing of the old tasks changes.
        encoder = copy.get_layer(per_task.name)
        (strings,) = tf.nest.flatten(copy.input)
        reps = _task_lora.encode_per_task(encoder, strings, [t.name for t in tasks], encoder.lora_rank)
        for t in tasks:
            outputs[t.name] = t.build_head(features_for(t, reps[t.name]))
    else:
        rep = _rep(copy)
        moe = len(rep["pooled"].shape) == 3
        for t in tasks:
            outputs[t.name] = t.build_head(_new_gate(copy, t, rep["pooled"]) if moe else features_for(t, rep))
    shared = shared_layer_names(copy.input, outputs)
    if freeze == "trunk":
        for layer in copy.layers:
            layer.trainable = False
    inputs = dict(copy.input) if isinstance(copy.input, dict) else copy.input
    return MultiTaskModel(
        inputs,
        outputs,
        name=name or model.name,
        tasks=list(copy.tasks) + tasks,
        shared_layers=shared,
        representation=None if per_task is not None else REPRESENTATION,
        unknown_labels=model.unknown_labels,
    )


__all__ = ["extend"]
