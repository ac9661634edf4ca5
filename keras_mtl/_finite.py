"""A cheap in-step record of the first step that left a trainable weight non-finite.

`callbacks.StopOnNonFiniteLoss` must say which step wrote a NaN into the
weights and which tasks' layers it hit. Reducing `is_finite` over every
weight in a separate function after each step was a tenth of a
census-income run, and even reading one flag variable back after each
step costs a visible share of an XLA-compiled step (the read waits for
the step's tail; benchmarks/RESULTS.md, "Monitoring"). So, once `enable(model)` is called,
`MultiTaskModel.train_step` ends with `record(model)`: one sum per weight
and, at the first step where some weight's sum is not finite, that step's
number and which layers hold such a weight, written to two variables the
step owns. The callback reads them only when it has a reason
to (a non-finite loss in the logs it gets anyway, or the end of an epoch),
and the step number and layers are still those of the step that wrote the
NaN. A sum that overflows to inf says "not finite" about finite weights, so
a record is only a reason to run the exact per-variable check, never a
verdict on its own (`clear` forgets a false alarm).

The variables are held outside Keras' and TensorFlow's tracking, so they
are never part of the model's weights, `.keras` files, checkpoints or
SavedModel exports. Under a `tf.distribute` strategy each replica writes
its own copy (no cross-replica traffic; replicas hold identical weights)
and reading gives the first replica's.

Weights of more than `RECORD_MAX_SIZE` values (embedding tables of hashed
ids) are left out of the per-step sum: summing a table of millions of rows
every step would cost more than the step, whose optimizer touches only the
rows of the batch (`optimizers.LazyAdam`). A NaN there reaches the loss at
the next step that reads the row; `unrecorded_finite` checks those tables
exactly, and `StopOnNonFiniteLoss` calls it at the end of every epoch.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _compat

_ATTR = "_finite_flag"
# Larger weights are checked at epoch ends, not summed every step.
RECORD_MAX_SIZE = 2**20


class _Flag:
    # A plain Python holder: TensorFlow tracks a tf.Variable set as an
    # attribute of a Keras model, not one inside an object it does not know.
    __slots__ = ("step", "layers", "recorded")

    def __init__(self, step: tf.Variable, layers: tf.Variable):
        self.step = step  # the optimizer step (1-based) of the first non-finite record; 0: none
        self.layers = layers  # per model layer, at that step: were its trainable weights finite?
        self.recorded = False


def _variable(value, name):
    return tf.Variable(
        value,
        trainable=False,
        name=name,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )


def enable(model: keras.Model) -> bool:
    """Makes `model`'s training steps record the first step that leaves a trainable float weight non-finite.

    Only `keras_mtl.MultiTaskModel` records it (returns True); any other
    model is left as it is (returns False). Call it before `fit` makes its
    train function, e.g. from a callback's `set_model`: a train function
    traced before was made without the record and is dropped so that the
    next `fit` traces one with it. Once enabled, it stays on for the model's
    later fits (re-tracing to drop one sum per weight would cost more than it
    saves). With `steps_per_execution > 1` the record still names the step
    inside the execution.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
    >>> enable(m), all_finite(m)
    (True, True)
    >>> enable(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    False
    """
    from keras_mtl._model import MultiTaskModel

    if not isinstance(model, MultiTaskModel):
        return False
    if model.__dict__.get(_ATTR) is None:
        with model.distribute_strategy.scope():
            flag = _Flag(
                _variable(tf.constant(0, tf.int64), "first_nonfinite_step"),
                _variable(tf.ones([len(model.layers)], tf.bool), "finite_layers"),
            )
        _compat.set_untracked(model, _ATTR, flag)
        model.train_function = None
    return True


def record(model: keras.Model) -> None:
    """In a training step, after the update: records the step if a trainable float weight looks non-finite.

    Does nothing unless `enable(model)` was called, and keeps the first
    record until `clear`. Inside a `tf.function` the reads are ordered after
    the optimizer's writes by TensorFlow's automatic control dependencies on
    the same variables.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")], trunk=mtl.trunks.mlp([2]))
    >>> m.compile(optimizer="sgd")
    >>> _ = enable(m)
    >>> _ = m.get_layer("a").kernel.assign(m.get_layer("a").kernel * float("nan"))
    >>> record(m)
    >>> all_finite(m), first_nonfinite(m)
    (False, (0, ['a']))
    """
    flag = model.__dict__.get(_ATTR)
    if flag is None:
        return
    variables = [v for v in float_trainables(model) if not _large(v)]
    flag.recorded = True  # while tracing: the callback can tell a train function that records
    if not variables:
        return
    # One sum per variable and one constant layer-by-variable product, not
    # ops per layer: a census model has 116 layers (most of them preprocessing
    # without weights), and per-layer ops added 0.15-0.3 s to compiling the step.
    column = {id(v): i for i, v in enumerate(variables)}
    holds = np.zeros([len(model.layers), len(variables)], np.float32)
    for row, layer in enumerate(model.layers):
        for v in layer.trainable_variables:
            if id(v) in column:
                holds[row, column[id(v)]] = 1.0
    finite_sums = tf.math.is_finite(tf.stack([tf.cast(tf.reduce_sum(v), tf.float32) for v in variables]))
    broken = tf.cast(tf.logical_not(finite_sums), tf.float32)
    finite_layers = tf.equal(tf.linalg.matvec(tf.constant(holds), broken), 0.0)
    first = tf.logical_and(tf.equal(flag.step, 0), tf.logical_not(tf.reduce_all(finite_sums)))
    optimizer = getattr(model, "optimizer", None)
    # The optimizer has counted this step already: its number, 1-based.
    step = tf.cast(optimizer.iterations, tf.int64) if optimizer is not None else tf.constant(0, tf.int64)
    flag.step.assign(tf.where(first, step, flag.step))
    flag.layers.assign(tf.where(first, finite_layers, flag.layers))


def float_trainables(model: keras.Model) -> list:
    """The trainable float variables of `model`: the weights the record (and the exact check) look at.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")], trunk=mtl.trunks.mlp([2]))
    >>> len(float_trainables(m))
    4
    """
    return [v for v in model.trainable_variables if keras.backend.is_float_dtype(v.dtype)]


def _large(variable) -> bool:
    return int(np.prod(variable.shape)) > RECORD_MAX_SIZE


def unrecorded_finite(model: keras.Model) -> bool:
    """Whether every weight too large for the per-step record (see `RECORD_MAX_SIZE`) is finite, checked exactly.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
    >>> unrecorded_finite(m)  # no weight that large
    True
    """
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in float_trainables(model) if _large(v))


def first_nonfinite(model: keras.Model) -> tuple[int, list[str]] | None:
    """`(step, layer names)` of the first recorded step with non-finite weights, or None.

    `step` is the optimizer's step count after that step (`optimizer.iterations`),
    the layers those whose trainable weights' sum was not finite then.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
    >>> _ = enable(m)
    >>> print(first_nonfinite(m))
    None
    """
    flag = model.__dict__.get(_ATTR)
    if flag is None:
        return None
    step, finite_layers = int(flag.step.value()), flag.layers.value().numpy()
    if step == 0 and finite_layers.all():
        return None
    return step, [layer.name for layer, ok in zip(model.layers, finite_layers) if not ok]


def all_finite(model: keras.Model) -> bool | None:
    """False if a step has recorded non-finite weights (see `first_nonfinite`), None if `model` records nothing.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
    >>> print(all_finite(m))
    None
    >>> _ = enable(m)
    >>> all_finite(m)  # no step has run: nothing recorded
    True
    """
    if model.__dict__.get(_ATTR) is None:
        return None
    return first_nonfinite(model) is None


def clear(model: keras.Model) -> None:
    """Forgets the record (after the exact check found every weight finite: a sum that overflowed).

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
    >>> _ = enable(m); clear(m); all_finite(m)
    True
    """
    flag = model.__dict__.get(_ATTR)
    if flag is not None:
        flag.step.assign(tf.constant(0, tf.int64))
        flag.layers.assign(tf.ones_like(flag.layers.value()))


def recorded(model: keras.Model) -> bool:
    """Whether `model`'s train function records non-finite weights (see `enable`).

    Example:
    >>> import keras_mtl as mtl
    >>> recorded(mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")]))
    False
    """
    flag = model.__dict__.get(_ATTR)
    return flag is not None and flag.recorded
