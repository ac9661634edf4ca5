"""ESMM (Ma et al. 2018): a conditional task trained over the entire space, under any architecture."""

from __future__ import annotations

from typing import Callable

from keras_mtl._model import MultiTaskModel
from keras_mtl.tasks import Binary, Task


def esmm(
    inputs,
    ctr_task: Task,
    cvr_task: Task,
    trunk: Callable | None = None,
    *,
    architecture: str = "shared_bottom",
    name: str = "esmm",
    **kwargs,
) -> MultiTaskModel:
    """Entire-space multi-task model: pCTCVR = pCTR x pCVR, trained on every impression.

    A conversion model trained only on clicked impressions is trained on a
    sample unlike the impressions it scores (sample-selection bias) and on
    few examples. ESMM instead trains pCTR against clicks and the product
    pCTR x pCVR against "clicked and converted" over every impression;
    pCVR itself gets its gradient only through the product. The returned
    model has the two tasks' outputs (pCTR, pCVR); its metrics include the
    conditional ones of the CVR task (on clicked impressions) and
    `<ctr>_and_<cvr>_auc` (pCTCVR over all impressions); its export serves
    pCTR, pCVR and `<ctr>_and_<cvr>` (pCTCVR).

    The paper's form shares only the embeddings and gives each task its own
    MLP tower: `trunk=trunks.tabular(feature_space, [])` with
    `Binary(..., tower=[64, 32])` for both tasks.

    Labels: the CVR task's label may be missing (NaN or -1) where there was
    no click; a label of 1 where the click label is 0 is reported before
    training (see `Task(inconsistent=...)`).

    Args:
        inputs: a `keras.Input` or a dict of them.
        ctr_task: the Binary task of the first event (click).
        cvr_task: the Binary task of the second (conversion), conditional on
            the first; `given` and `entire_space` are set on a copy of it.
        trunk: a trunk from `keras_mtl.trunks`.
        architecture: the factory the two tasks share the trunk under
            (`keras_mtl.models.available()`), e.g. `"mmoe"`, `"cgc"`, `"ple"`.
        name: model name.
        **kwargs: passed to the architecture (`num_experts=...`).

    Example:
    >>> import keras, keras_mtl as mtl
    >>> m = esmm(keras.Input((4,), name="x"), mtl.tasks.Binary("click"), mtl.tasks.Binary("buy"),
    ...          architecture="mmoe", num_experts=2, expert_units=[8])
    >>> m.get_task("buy").given, m.get_task("buy").entire_space
    ('click', True)
    """
    from keras_mtl import models

    for role, task in (("ctr_task", ctr_task), ("cvr_task", cvr_task)):
        if not isinstance(task, Binary):
            raise ValueError(f"esmm: {role} must be a keras_mtl.tasks.Binary task; got {task!r}.")
    if cvr_task.given not in (None, ctr_task.name):
        raise ValueError(
            f"esmm: cvr_task {cvr_task.name!r} is given {cvr_task.given!r}, not the ctr_task {ctr_task.name!r}."
        )
    cvr = Binary.from_config({**cvr_task.get_config(), "given": ctr_task.name, "entire_space": True})
    return models.get(architecture)(inputs, [ctr_task, cvr], trunk, name=name, **kwargs)
