"""Which variables `MultiTaskModel.compile(learning_rate_multipliers=...)` scales, and by how much.

Keys name a task or a top-level layer of the model. A task name means the
task's own layers: those only its output depends on, after the shared
representation (its tower and output layer, and any task-specific layer
such as a gate). It takes precedence over the output layer of the same
name, which it includes. Any other key is a layer name (`model.get_layer`),
covering the layer's trainable variables and those of its sublayers (a
pretrained encoder's whole backbone, or only its LoRA adapters).
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping

import keras

ARG = "learning_rate_multipliers"


def check(multipliers) -> dict[str, float]:
    """`multipliers` as `{key: float}`, after checking each factor is a finite number > 0.

    Example:
    >>> check({"trunk": 0.1, "a": 2})
    {'trunk': 0.1, 'a': 2.0}
    """
    if multipliers is None:
        return {}
    if not isinstance(multipliers, Mapping):
        raise TypeError(
            f"{ARG} must be a dict {{layer or task name: factor}}, got {type(multipliers).__name__}."
        )
    checked = {}
    for key, factor in multipliers.items():
        if not isinstance(key, str):
            raise TypeError(f"{ARG} keys must be layer or task names (str), got {key!r}.")
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
            raise TypeError(f"{ARG}[{key!r}] must be a positive number, got {factor!r}.")
        if factor == 0:
            raise ValueError(
                f"{ARG}[{key!r}] is 0, which would freeze {key!r} while still computing its gradients "
                f"and optimizer state; freeze it instead (model.get_layer({key!r}).trainable = False, "
                "or trunks.pretrained(train='frozen')) and compile again."
            )
        if not math.isfinite(factor) or factor < 0:
            raise ValueError(f"{ARG}[{key!r}] must be a finite number > 0, got {factor!r}.")
        checked[key] = float(factor)
    return checked


def task_layers(model, task: str) -> list:
    """The layers of `model` that only `task`'s output depends on, after the shared representation.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a", tower=[4]), mtl.tasks.Binary("b")])
    >>> [layer.name for layer in task_layers(model, "a")]
    ['a_tower_0', 'a']
    """
    from keras_mtl.models._build import layers_per_output

    outputs = model.output if isinstance(model.output, Mapping) else dict(zip(model.output_names, model.outputs))
    per_task = layers_per_output(model.input, outputs)
    elsewhere = {id(layer) for name, layers in per_task.items() if name != task for layer in layers}
    if model.representation:
        rep = keras.Model(model.input, model.get_layer(model.representation).output)
        elsewhere |= {id(layer) for layer in rep.layers}
    return [layer for layer in per_task[task] if id(layer) not in elsewhere]


def resolve(model, multipliers: Mapping[str, float]) -> list[tuple]:
    """`(variable, factor)` for every trainable variable a key of `multipliers` covers.

    Raises a ValueError naming the key for an unknown name (listing the
    valid ones), a layer or task with no trainable variables, and a variable
    two keys cover.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")])
    >>> [(v.path, f) for v, f in resolve(model, {"a": 2.0})]
    [('a/kernel', 2.0), ('a/bias', 2.0)]
    """
    tasks = [t.name for t in model.tasks]
    layers = {layer.name: layer for layer in model.layers}
    covered, pairs = {}, []
    for key, factor in multipliers.items():
        if key in tasks:
            own = task_layers(model, key)
            what = f"task {key!r}'s own layers {[layer.name for layer in own]}"
        elif key in layers:
            own, what = [layers[key]], f"layer {key!r}"
        else:
            valid = [name for name, layer in layers.items() if layer.trainable_variables and name not in tasks]
            raise ValueError(
                f"{ARG} names {key!r}, which is neither a task nor a layer of model {model.name!r}. "
                f"Tasks: {tasks}; layers with trainable variables: {valid}."
            )
        variables = {id(v): v for layer in own for v in layer.trainable_variables}
        if not variables:
            raise ValueError(
                f"{ARG}[{key!r}]: {what} of model {model.name!r} has no trainable variables (frozen, e.g. "
                "trunks.pretrained(train='frozen'), or without weights), so there is nothing to scale; "
                "remove the key, or make the layer trainable first."
            )
        for variable in variables.values():
            other = covered.setdefault(id(variable), key)
            if other != key:
                raise ValueError(
                    f"{ARG} keys {other!r} and {key!r} both cover variable {variable.path!r}; a variable "
                    "takes one multiplier: name the layers so that they do not overlap."
                )
            pairs.append((variable, factor))
    return pairs
