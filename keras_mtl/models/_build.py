"""What every architecture factory does last: heads on the representation, then the model."""

from __future__ import annotations

from typing import Mapping, Sequence

import keras

from keras_mtl._model import MultiTaskModel
from keras_mtl.tasks import Task, check_unique

REPRESENTATION = "representation"


def mark_representation(rep):
    """Names the shared representation (an Identity layer: no compute) so it can be found later."""
    if isinstance(rep, Mapping):
        unknown = sorted(set(rep) - {"pooled", "sequence"})
        if unknown or "pooled" not in rep:
            raise ValueError(
                "A trunk returning a dict must give 'pooled' (and optionally 'sequence'); "
                f"got keys {sorted(rep)}."
            )
        return {
            k: keras.layers.Identity(name=REPRESENTATION if k == "pooled" else f"{REPRESENTATION}_{k}")(v)
            for k, v in rep.items()
        }
    return {"pooled": keras.layers.Identity(name=REPRESENTATION)(rep)}


def features_for(task: Task, rep: Mapping) -> keras.KerasTensor:
    """The part of the representation a task reads: per-token for Tagging, pooled otherwise."""
    if task.uses_sequence:
        if "sequence" not in rep:
            raise ValueError(
                f"Task {task.name!r} ({type(task).__name__}) needs per-token features; use a "
                "trunk with a sequence output such as keras_mtl.trunks.text."
            )
        return rep["sequence"]
    return rep["pooled"]


def pooled_features(trunk_output, tasks: Sequence[Task], architecture: str) -> keras.KerasTensor:
    """The per-example (pooled) trunk output, for architectures that mix per-example features.

    Mixtures of experts, cross-stitch units and soft-shared columns work on
    one vector per example, so tasks that need per-token features
    (`Tagging`) are refused here with an error naming them.

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> pooled_features({"pooled": keras.Input((8,)), "sequence": keras.Input((5, 8))}, [Binary("a")], "mmoe").shape
    (None, 8)
    """
    for task in tasks:
        if task.uses_sequence:
            raise ValueError(
                f"{architecture}: task {task.name!r} ({type(task).__name__}) needs per-token "
                f"features, but {architecture} works on one pooled vector per example; use "
                "shared_bottom for token-level tasks."
            )
    if isinstance(trunk_output, Mapping):
        if "pooled" not in trunk_output:
            raise ValueError(
                f"{architecture}: a trunk returning a dict must give 'pooled'; got keys "
                f"{sorted(trunk_output)}."
            )
        trunk_output = trunk_output["pooled"]
    if len(trunk_output.shape) != 2:
        raise ValueError(
            f"{architecture} needs a trunk output of shape (batch, features); got "
            f"{trunk_output.shape}."
        )
    return trunk_output


def layers_per_output(inputs, outputs: Mapping) -> dict[str, list[keras.layers.Layer]]:
    """For each output, the layers it depends on, in the graph's order: `{key: [layer, ...]}`.

    A throwaway Functional per output lists its ancestors without calling
    any layer. A layer in one output's list only is that output's own (its
    head, tower, gate, task experts); one in every list is shared.

    Example:
    >>> x = keras.Input((3,))
    >>> h = keras.layers.Dense(4, name="shared")(x)
    >>> found = layers_per_output(x, {"a": keras.layers.Dense(1, name="a")(h), "b": keras.layers.Dense(1, name="b")(h)})
    >>> {key: [layer.name for layer in layers if layer.weights] for key, layers in found.items()}
    {'a': ['shared', 'a'], 'b': ['shared', 'b']}
    """
    return {key: list(keras.Model(inputs, out).layers) for key, out in outputs.items()}


def shared_layer_names(inputs, outputs: Mapping) -> list[str]:
    """Layers with trainable weights that every task's output depends on.

    These are the parameters all task losses pull on, i.e. where task
    gradients can conflict (see `layers_per_output`).

    Example:
    >>> x = keras.Input((3,))
    >>> h = keras.layers.Dense(4, name="shared")(x)
    >>> shared_layer_names(x, {"a": keras.layers.Dense(1, name="a")(h), "b": keras.layers.Dense(1, name="b")(h)})
    ['shared']
    """
    per_task = [
        [layer.name for layer in layers if layer.trainable_weights]
        for layers in layers_per_output(inputs, outputs).values()
    ]
    common = set.intersection(*(set(names) for names in per_task))
    return [name for name in per_task[0] if name in common]


def build_model(
    inputs,
    tasks: Sequence[Task],
    rep: Mapping | None,
    name: str,
    *,
    features: Mapping[str, keras.KerasTensor] | None = None,
    representation: str | None = REPRESENTATION,
    **model_kwargs,
) -> MultiTaskModel:
    """Adds each task's head and returns the MultiTaskModel.

    Each head reads `features[task.name]` when `features` is given (for
    architectures where tasks read different tensors: gate mixtures,
    columns), otherwise its part of the marked representation `rep`
    (see `features_for`). Either way the model records the layer named
    "representation", which the architecture must have put on the path to
    the outputs; `representation=None` where tasks share no representation
    (per-task adapters: `rep` is then None and `features` given).

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> x = keras.Input((3,))
    >>> rep = mark_representation(keras.layers.Dense(4)(x))
    >>> build_model(x, [Binary("a")], rep, "demo").representation
    'representation'
    """
    tasks = check_unique(tasks)
    if features is not None and sorted(features) != sorted(t.name for t in tasks):
        raise ValueError(
            f"features are keyed {sorted(features)}; they must be keyed by the task names "
            f"{sorted(t.name for t in tasks)}."
        )
    # A plain dict: Keras compares input structures by type, and tracked
    # dicts (e.g. FeatureSpace.get_inputs()) would not match the data's dicts.
    if isinstance(inputs, Mapping):
        inputs = dict(inputs)
    outputs = {
        t.name: t.build_head(features[t.name] if features is not None else features_for(t, rep))
        for t in tasks
    }
    return MultiTaskModel(
        inputs,
        outputs,
        name=name,
        tasks=tasks,
        shared_layers=shared_layer_names(inputs, outputs),
        representation=representation,
        **model_kwargs,
    )
