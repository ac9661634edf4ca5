"""AITM (Xi et al., KDD 2021): sequential tasks whose towers pass information down the funnel."""

from __future__ import annotations

from typing import Callable, Sequence

import keras

from keras_mtl import trunks
from keras_mtl._model import MultiTaskModel
from keras_mtl.layers.information_transfer import InformationTransfer
from keras_mtl.models._build import build_model
from keras_mtl.tasks import Binary, Task


def aitm(
    inputs,
    tasks: Sequence[Task],
    trunk: Callable | None = None,
    *,
    tower_units: Sequence[int] = (64, 32),
    calibrator: float = 0.0,
    architecture: str = "shared_bottom",
    name: str = "aitm",
    **kwargs,
) -> MultiTaskModel:
    """Adaptive Information Transfer Multi-task model for the steps of a funnel (impression ->
    click -> purchase), each a Binary task over every example, in order.

    Every task has its own tower on what `architecture` gives it: the
    shared trunk output (shared-bottom, the paper's setting), or the task's
    own mixture of experts (MMoE, CGC, PLE) or column (cross-stitch, soft
    sharing). From the second
    task on, what the previous task's tower concluded is transferred (a
    Dense layer, `<previous>_transfer`) and mixed with the task's own tower by
    an `InformationTransfer` attention (`<task>_ait`) before its head. With
    `calibrator` > 0 each later task's loss adds `calibrator` x the mean of
    max(p(task) - p(previous), 0) (its `at_most` option): a purchase is no
    likelier than the click it needs.

    Unlike a conditional task (`given=`), every task here is predicted and
    labelled over every example: the later step's label is 0 where the
    earlier one did not happen.

    Args:
        inputs: a `keras.Input` or a dict of them.
        tasks: Binary tasks, earliest step first.
        trunk: a trunk from `keras_mtl.trunks`; default `trunks.mlp()`.
        tower_units: widths of each task's tower (the last is the transferred width).
        calibrator: the weight of the p(later) <= p(earlier) penalty (the paper's alpha).
        architecture: the factory under the towers (`keras_mtl.models.available()`),
            e.g. `"mmoe"`, `"ple"`; its heads are replaced by the AITM towers.
        name: model name.
        **kwargs: passed to the architecture (`num_experts=...`) and to
            `MultiTaskModel` (`unknown_labels=...`).

    Example:
    >>> import keras, keras_mtl as mtl
    >>> m = aitm(keras.Input((4,)), [mtl.tasks.Binary("click"), mtl.tasks.Binary("buy")], calibrator=0.5)
    >>> m.get_task("buy").at_most, m.get_layer("buy_ait").name
    ('click', 'buy_ait')
    >>> m = aitm(keras.Input((4,)), [mtl.tasks.Binary("click"), mtl.tasks.Binary("buy")],
    ...          architecture="mmoe", num_experts=2, expert_units=[8])
    >>> [layer.name for layer in m.layers if layer.name.endswith("_gate")]
    ['click_gate', 'buy_gate']
    """
    from keras_mtl import models

    tasks = list(tasks)
    if len(tasks) < 2 or not all(isinstance(t, Binary) for t in tasks):
        raise ValueError(
            f"aitm: tasks must be two or more Binary tasks, earliest step first; got {tasks!r}."
        )
    if not calibrator >= 0:
        raise ValueError(f"aitm: calibrator must be >= 0, got {calibrator!r}.")
    if not tower_units:
        raise ValueError("aitm: tower_units must name at least one layer width.")
    chained = [tasks[0]] + [
        Binary.from_config({**t.get_config(), "at_most": prev.name, "at_most_weight": float(calibrator)})
        if calibrator > 0 else t
        for prev, t in zip(tasks, tasks[1:])
    ]
    # What each task's head would read under the architecture (the trunk output,
    # its gated mixture, its column): the AITM tower goes there instead.
    plain = [Binary(t.name) for t in tasks]
    base = models.get(architecture)(inputs, plain, trunk or trunks.mlp(), name=name, **kwargs)
    bases = {t.name: base.get_layer(t.name).input for t in plain}
    features, previous = {}, None
    for t in chained:
        h = bases[t.name]
        for i, width in enumerate(tower_units):
            h = keras.layers.Dense(width, activation="relu", name=f"{t.name}_aitm_tower_{i}")(h)
        if previous is not None:
            transferred = keras.layers.Dense(tower_units[-1], activation="relu", name=f"{previous[0]}_transfer")(previous[1])
            h = InformationTransfer(name=f"{t.name}_ait")([transferred, h])
        features[t.name] = h
        previous = (t.name, h)
    return build_model(inputs, chained, None, name, features=features, unknown_labels=base.unknown_labels)
