"""`monitoring()`: the default monitoring callbacks for a run."""

from __future__ import annotations

import keras

from keras_mtl.callbacks.expert_utilisation import ExpertUtilisation
from keras_mtl.callbacks.gradient_conflict import GradientConflict
from keras_mtl.callbacks.lean_tensorboard import LeanTensorBoard
from keras_mtl.callbacks.task_affinity import TaskAffinity
from keras_mtl.callbacks.task_scalars import TaskScalars
from keras_mtl.layers.gate_usage import gate_layout


def monitoring(
    log_dir: str,
    probe=None,
    *,
    model: keras.Model | None = None,
    conflict_every: int = 100,
    affinity_every: int = 200,
    histogram_freq: int = 0,
    write_graph: bool = False,
) -> list[keras.callbacks.Callback]:
    """The default monitoring callbacks for a run: `LeanTensorBoard` plus the multi-task ones.

    Without a probe batch the probes (conflict, affinity) are left out. With
    `model`, `ExpertUtilisation` is added only if the model has gates;
    without it, it is added and finds out when training starts.
    `write_graph=True` also writes TensorBoard's op graph (off by default:
    the report has the architecture diagram instead).

    These only watch. Guarding the run is a separate choice, as in Keras
    (`TensorBoard` and `TerminateOnNaN`): add `StopOnNonFiniteLoss()` to
    stop at the first non-finite loss or weight with the task and step named
    (`keras-mtl train` always does, with or without monitoring).

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> plain = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
    >>> [type(c).__name__ for c in monitoring(tempfile.mkdtemp(), model=plain)]
    ['LeanTensorBoard', 'TaskScalars']
    """
    callbacks: list = [
        # write_graph off by default: writing the op graph took 0.1-0.25 s at
        # the first step of every census-income fit, and keras_mtl.diagram
        # draws the architecture for the report instead.
        LeanTensorBoard(log_dir=str(log_dir), histogram_freq=histogram_freq, write_graph=write_graph),
        TaskScalars(log_dir),
    ]
    if model is None or gate_layout(model):
        callbacks.append(ExpertUtilisation(log_dir))
    if probe is not None:
        # Affinity first: where both are due, the conflict check reuses its probe call.
        if affinity_every:
            callbacks.append(TaskAffinity(log_dir, probe, every_n_steps=affinity_every))
        if conflict_every:
            callbacks.append(GradientConflict(log_dir, probe, every_n_steps=conflict_every))
    return callbacks


__all__ = ["monitoring"]
