"""`calibrate`: fit each Binary task's calibration on held-out data and put it in the model's graph."""

from __future__ import annotations

import collections.abc

import keras
import numpy as np
import tensorflow as tf

from keras_mtl._encoding import producer
from keras_mtl._model import MultiTaskModel
from keras_mtl.calibration.fitting import fit_isotonic, fit_platt
from keras_mtl.calibration.layer import METHODS, Calibration
from keras_mtl.calibration.metrics import reliability
from keras_mtl.tasks import Binary


def _held_out(model, data):
    """`(predictions, labels, weights)` per task from `(x, y)` or a dataset of `(x, y[, w])` batches,
    with the model's own masking (missing labels, conditional tasks' sample spaces)."""
    if isinstance(data, tf.data.Dataset):
        batches = list(data)
    elif isinstance(data, tuple) and len(data) in (2, 3):
        batches = [data]
    else:
        raise ValueError(
            "calibrate: pass held-out data as (x, y) or a tf.data.Dataset of (x, y) batches "
            f"(e.g. data.validation); got {type(data).__name__}."
        )
    preds, labels, weights = {}, {}, {}
    for batch in batches:
        x, y, sw = (tuple(batch) + (None,))[:3]
        y_pred = model(x, training=False)
        y = {k: tf.convert_to_tensor(v) for k, v in y.items()} if isinstance(y, collections.abc.Mapping) else y
        lab, wei = model.prepare_targets(y, y_pred, sw, check=True)
        for t in model.tasks:
            preds.setdefault(t.name, []).append(np.asarray(y_pred[t.name]).reshape(-1))
            labels.setdefault(t.name, []).append(np.asarray(lab[t.name]).reshape(-1))
            weights.setdefault(t.name, []).append(np.asarray(wei[t.name]).reshape(-1))
    join = lambda parts: {k: np.concatenate(v) for k, v in parts.items()}  # noqa: E731
    return join(preds), join(labels), join(weights)


def calibrate(model: MultiTaskModel, data, tasks=None, method: str = "platt", *, knots: int = 64) -> MultiTaskModel:
    """A copy of `model` whose Binary tasks' outputs go through a calibration fitted on `data`.

    Fit on held-out data (the validation split), not on the training data the
    model already fits too well. Each task is fitted on the examples its own
    loss counts (labelled ones; for a conditional task, its sample space).
    The calibration is a `Calibration` layer after the task's output, so
    `predict`, `.keras` saving and the SavedModel export all give the
    calibrated probability; the entire-space product of a conditional task
    then multiplies calibrated probabilities. Calibrating a calibrated model
    replaces its calibration. The copy shares every other layer (and its
    weights) with `model` and is not compiled: compile it to `evaluate`.

    Args:
        model: a keras_mtl model.
        data: held-out `(x, y)` or a `tf.data.Dataset` of `(x, y[, sample_weight])`.
        tasks: the Binary tasks to calibrate (default: every Binary task).
        method: `"platt"` (a sigmoid of the logit: two parameters, for
            smoothly over- or under-confident models) or `"isotonic"` (a
            monotone map: any distortion, needs more data).
        knots: points of the isotonic map.

    Returns:
        The calibrated model; `calibrated.calibration` holds, per task, the
        method, its parameters and the reliability (ECE, log loss, bins) on
        `data` before and after.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Binary("click")])
    >>> x = np.random.default_rng(0).normal(size=(256, 2)).astype("float32")
    >>> c = calibrate(m, ({"x": x}, {"click": (x[:, 0] > 0).astype("float32")}))
    >>> report = c.calibration["click"]   # Platt minimises the log loss on `data`: it can only fall
    >>> c.get_layer("click_calibration").method, report["after"]["logloss"] <= report["before"]["logloss"]
    ('platt', True)
    """
    if method not in METHODS:
        raise ValueError(f"calibrate: method must be one of {list(METHODS)}, got {method!r}.")
    known = {t.name: t for t in model.tasks}
    names = [t.name for t in model.tasks if isinstance(t, Binary)] if tasks is None else (
        [tasks] if isinstance(tasks, str) else list(tasks)
    )
    for name in names:
        if name not in known:
            raise ValueError(f"calibrate: the model has no task {name!r}; its tasks are {list(known)}.")
        if not isinstance(known[name], Binary):
            raise ValueError(
                f"calibrate: task {name!r} is a {type(known[name]).__name__} task; calibration maps a "
                "probability, so only Binary tasks can be calibrated."
            )
    if not names:
        raise ValueError(f"calibrate: the model has no Binary task to calibrate; its tasks are {list(known)}.")
    base = {}
    for t in model.tasks:
        tensor = model.output[t.name]
        layer, node = producer(tensor)
        if t.name in names and isinstance(layer, Calibration):  # recalibrated from its uncalibrated output
            tensor = node.input_tensors[0]
        base[t.name] = tensor  # other tasks keep their output, calibrated or not
    preds, labels, weights = _held_out(_view(model, base), data)
    outputs, report = dict(base), {}
    for name in names:
        keep = weights[name] > 0
        p, y, w = preds[name][keep], labels[name][keep], weights[name][keep]
        if not len(p) or len(np.unique(y)) < 2:
            raise ValueError(
                f"calibrate: task {name!r} needs labelled held-out examples of both classes; "
                f"the data has {len(p)} labelled, {int(y.sum())} positive."
            )
        layer = Calibration(method, knots, name=f"{name}_calibration")
        outputs[name] = layer(base[name])
        if method == "platt":
            params = fit_platt(p, y, w)
            layer.set_weights([np.float32(params[0]), np.float32(params[1])])
            fitted = {"a": params[0], "b": params[1]}
        else:
            x_knots, y_knots = fit_isotonic(p, y, w, knots)
            pad = knots + 2 - len(x_knots)
            x_knots = np.concatenate([x_knots, np.ones(pad)])
            y_knots = np.concatenate([y_knots, np.full(pad, y_knots[-1])])
            layer.set_weights([x_knots.astype("float32"), y_knots.astype("float32")])
            fitted = {"x": x_knots.tolist(), "y": y_knots.tolist()}
        after = np.asarray(layer(p[:, None].astype("float32"))).reshape(-1)
        report[name] = {"method": method, **fitted, "before": reliability(y, p, w), "after": reliability(y, after, w)}
    calibrated = MultiTaskModel(
        model.input, outputs, name=model.name, tasks=model.tasks, shared_layers=model.shared_layers,
        representation=model.representation, unknown_labels=model.unknown_labels,
    )
    calibrated.calibration = report
    return calibrated


def _view(model: MultiTaskModel, outputs: dict) -> MultiTaskModel:
    """`model`'s tasks over other output tensors of its graph, to read held-out predictions from."""
    return MultiTaskModel(
        model.input, outputs, name=f"{model.name}_uncalibrated", tasks=model.tasks,
        unknown_labels=model.unknown_labels,
    )
