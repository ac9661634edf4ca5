"""Label and feature checks of a dataset, made before the training step or beside it.

A check inside the step costs the step its ops, and XLA drops asserts from
a compiled step altogether. So `MultiTaskModel.fit` and `evaluate` check
what they can before the step: datasets keras_mtl built from columns it
checked up front (`MultiTaskData.from_splits`, `from_columns(tasks=...)`)
are marked (`mark_checked`) and read as they are. A user's own pipeline
keeps one assert per task in the step, unless the step is XLA-compiled:
then a finite pipeline is read once before training (`scan`) and an
infinite one is checked batch by batch as it is read (`check_batches`, a
`map` on tf.data's threads, whose set-up costs each iterator a few
milliseconds).

Each failing check names the task (or feature) and shows the smallest and
largest label of the batch, or of the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from keras_mtl.tasks import Task

_CHECKED_ATTR = "_keras_mtl_checked_tasks"
# On a user's dataset: its checked view, reused by later fits (building one
# traces the check function, which would cost each `fit` call its time).
_VIEW_ATTR = "_keras_mtl_checked_view"


def _contract(task: Task) -> tuple:
    # What a label check depends on: two tasks equal in these check labels alike.
    return (
        type(task).__name__, task.label, getattr(task, "units", None), task.target_kind,
        task.missing_class_id, task.label_range,
    )


def mark_checked(dataset: tf.data.Dataset, tasks: Sequence[Task]) -> tf.data.Dataset:
    """Records on `dataset` that its labels (and features) were checked against `tasks`; returns it.

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> ds = mark_checked(tf.data.Dataset.range(2), [Binary("a")])
    >>> checked_for(ds, [Binary("a")]), checked_for(ds, [Binary("b")])
    (True, False)
    """
    setattr(dataset, _CHECKED_ATTR, frozenset(_contract(t) for t in tasks))
    return dataset


def checked_for(dataset, tasks: Sequence[Task]) -> bool:
    """Whether `dataset` was checked against tasks that check labels exactly as `tasks` do."""
    checked = getattr(dataset, _CHECKED_ATTR, None)
    return checked is not None and all(_contract(t) in checked for t in tasks)


def check_batches(dataset: tf.data.Dataset, tasks: Sequence[Task]) -> tf.data.Dataset:
    """`dataset` with every batch checked: the tasks' labels, and float features for NaN/inf.

    Elements are `(features, labels)` or `(features, labels, sample_weight)`;
    labels a dict keyed by label key (or one tensor, for one task). Label
    keys that no task reads, and tasks whose key is absent, are left to the
    model (which names them when it builds its step). A dataset without
    labels is returned as it is. The checks run asynchronously, in order.

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> ds = tf.data.Dataset.from_tensors(({"x": [[1.0]]}, {"a": [2.0]}))
    >>> try:
    ...     list(check_batches(ds, [Binary("a")]))
    ... except tf.errors.InvalidArgumentError as e:
    ...     print(e.message.split("assertion failed: ")[1].splitlines()[0])
    [Task a: labels must be in [0, 1] (-1 or NaN = missing); smallest and largest label in the batch:] [2] [2]
    """
    contracts = frozenset(_contract(t) for t in tasks)
    view = getattr(dataset, _VIEW_ATTR, None)
    if view is not None and view[0] == contracts:
        return view[1]
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        return mark_checked(dataset, tasks)
    readers = _readers(spec, tasks)

    @tf.autograph.experimental.do_not_convert
    def check(*element):
        features, labels = element[0], element[1]
        checks = []
        for task, key in readers:
            y = labels if key is None else labels[key]
            checks += task.label_checks(task.mask_labels(tf.convert_to_tensor(y))[0])
        for name, value in _named_leaves(features):
            if value.dtype.is_floating:
                checks.append(tf.debugging.assert_all_finite(
                    value, f"Feature {name!r} holds NaN or inf; features have no missing marker, "
                    "so it would make every task's loss NaN. Fill or drop those rows first",
                ))
        if not checks:
            return element
        with tf.control_dependencies(checks):
            return (element[0], tf.nest.map_structure(tf.identity, labels)) + tuple(element[2:])

    checked = mark_checked(dataset.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), tasks)
    setattr(dataset, _VIEW_ATTR, (contracts, checked))
    return checked


def scan(dataset: tf.data.Dataset, tasks: Sequence[Task], where: str = "the dataset") -> tf.data.Dataset:
    """Reads a finite `dataset` once and checks all its labels and float features; returns it marked checked.

    For a pipeline that a compiled (XLA) step reads: XLA drops asserts, and
    a checking `map` would cost every epoch's iterator its set-up. One pass
    keeps each task's smallest and largest real label and whether each
    float feature was finite throughout, then checks them here, raising a
    ValueError that names the task (or feature) and the offending value. A
    cached pipeline fills its cache on this pass. The dataset is marked, so
    later `fit`s read it as it is.

    Example:
    >>> from keras_mtl.tasks import Binary
    >>> ds = tf.data.Dataset.from_tensor_slices(({"x": [[1.0], [2.0]]}, {"a": [1.0, 3.0]})).batch(1)
    >>> scan(ds, [Binary("a")])
    Traceback (most recent call last):
    ...
    ValueError: Task a: labels must be in [0, 1] (-1 or NaN = missing); in the dataset, the smallest and largest label are 1.0 and 3.0.
    """
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        return mark_checked(dataset, tasks)
    readers = _readers(spec, tasks)
    floats = [name for name, value in _named_leaves(spec[0]) if value.dtype.is_floating]
    inf = tf.constant(float("inf"), tf.float64)

    def step(state, element):
        lows, highs, finite = state
        labels = element[1]
        low, high = [], []
        for task, key in readers:
            y = tf.cast(task.mask_labels(tf.convert_to_tensor(labels if key is None else labels[key]))[0], tf.float64)
            low.append(tf.reduce_min(tf.concat([tf.reshape(y, [-1]), [inf]], 0)))
            high.append(tf.reduce_max(tf.concat([tf.reshape(y, [-1]), [-inf]], 0)))
        leaves = dict(_named_leaves(element[0]))
        ok = [tf.reduce_all(tf.math.is_finite(leaves[name])) for name in floats]
        return (
            tf.minimum(lows, tf.stack(low)) if low else lows,
            tf.maximum(highs, tf.stack(high)) if high else highs,
            tf.logical_and(finite, tf.stack(ok)) if ok else finite,
        )

    start = (tf.fill([len(readers)], inf), tf.fill([len(readers)], -inf), tf.ones([len(floats)], tf.bool))
    lows, highs, finite = (v.numpy() for v in dataset.reduce(start, step))
    for name, ok in zip(floats, finite):
        if not ok:
            raise ValueError(
                f"Feature {name!r} in {where} holds NaN or inf; features have no missing marker, so it "
                "would make every task's loss NaN. Fill or drop those rows first."
            )
    for (task, _), low, high in zip(readers, lows, highs):
        if low > high:
            continue  # no real labels at all
        rule = task.label_rule(tf.constant(low), tf.constant(high))
        if rule is not None and not bool(rule[0]):
            raise ValueError(f"{rule[1]}; in {where}, the smallest and largest label are {low} and {high}.")
    return mark_checked(dataset, tasks)


def _readers(spec, tasks):
    one_label = not isinstance(spec[1], Mapping)
    if one_label:
        return [(tasks[0], None)] if len(tasks) == 1 else []  # the model names the problem
    return [(t, t.label) for t in tasks if t.label in spec[1]]


def _named_leaves(features) -> list:
    """`[(name, tensor or spec)]` of the dense features: by key, or by position."""
    dense = (tf.Tensor, tf.TensorSpec)
    if isinstance(features, Mapping):
        return [(k, v) for k, v in features.items() if isinstance(v, dense)]
    if isinstance(features, dense):
        return [("the input", features)]
    return [(f"input {i}", v) for i, v in enumerate(tf.nest.flatten(features)) if isinstance(v, dense)]
