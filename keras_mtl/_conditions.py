"""Conditional tasks (`Task(given=...)`): sample spaces, the entire-space product, and its AUC.

A conversion can only follow a click. The conversion task's own output is
p(conversion | click); its loss and metrics count the examples whose click
label is positive (its sample space). Over every example, the quantity
that can be checked is p(click) x p(conversion | click) against "clicked
and converted" (ESMM's pCTCVR): logged as `<given>_and_<task>_auc`, served
as `<given>_and_<task>`, and, for an `entire_space` task, what its loss
is computed on.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import tensorflow as tf

from keras_mtl.tasks import _AUC_THRESHOLDS, Binary, Task


def joint_name(task: Task) -> str:
    """The name of p(given) x p(task | given): `<given>_and_<task>`.

    Example:
    >>> joint_name(Binary("conversion", given="click"))
    'click_and_conversion'
    """
    return f"{task.given}_and_{task.name}"


def joint_tasks(tasks: Sequence[Task]) -> list[Task]:
    """The conditional Binary tasks whose given task is among `tasks`: those with a joint
    (entire-space) probability p(given) x p(task | given)."""
    names = {t.name for t in tasks}
    return [t for t in tasks if isinstance(t, Binary) and t.given in names]


def log_groups(tasks: Sequence[Task]) -> list[str]:
    """The names that own log keys: the tasks', then each joint probability's (whose
    `<given>_and_<task>_auc` belongs to `<given>_and_<task>`, not to the given task).

    Example:
    >>> log_groups([Binary("click"), Binary("buy", given="click")])
    ['click', 'buy', 'click_and_buy']
    """
    return [t.name for t in tasks] + [joint_name(t) for t in joint_tasks(tasks)]


def external_parents(tasks: Sequence[Task]) -> list[Binary]:
    """The given tasks that are not among `tasks`, as Binary tasks reading the label key `given`.

    A model of a subset of a dataset's tasks (a single-task baseline, a task
    group) can hold a conditional task without the task it is given: its
    sample space then comes from the given task's labels alone.
    """
    names = {t.name for t in tasks}
    return [Binary(g) for g in dict.fromkeys(t.given for t in tasks if t.given is not None and t.given not in names)]


def check_conditions(tasks: Sequence[Task], *, subset: bool = False) -> None:
    """Every `given` names another task of the model, a Binary one, without a cycle; every
    `at_most` names a Binary task of the model.

    With `subset` (a model of some of a dataset's tasks), a given task may be
    absent: its labels are read from the data under its name.

    Example:
    >>> check_conditions([Binary("click"), Binary("buy", given="click")])
    >>> check_conditions([Binary("buy", given="click")])
    Traceback (most recent call last):
    ...
    ValueError: Task 'buy' is given 'click', which is not a task of this model; its tasks are ['buy'].
    """
    by_name = {t.name: t for t in tasks}
    for t in tasks:
        if t.at_most is not None and not isinstance(by_name.get(t.at_most), Binary):
            raise ValueError(
                f"Task {t.name!r} is at_most {t.at_most!r}, which is not a Binary task of this model; "
                f"its tasks are {list(by_name)}."
            )
        if t.given is None:
            continue
        parent = by_name.get(t.given)
        if parent is None and subset:
            continue
        if parent is None:
            raise ValueError(
                f"Task {t.name!r} is given {t.given!r}, which is not a task of this model; "
                f"its tasks are {list(by_name)}."
            )
        if not isinstance(parent, Binary):
            raise ValueError(
                f"Task {t.name!r} is given {t.given!r}, a {type(parent).__name__} task; a task can only be "
                "conditional on a Binary one (its positive examples are the sample space)."
            )
        if joint_name(t) in by_name:
            raise ValueError(
                f"Task {t.name!r} given {t.given!r} logs and serves {joint_name(t)!r}, which is also a "
                "task's name; rename one of them."
            )
        chain, node = [t.name], parent
        while node is not None and node.given is not None:
            chain.append(node.name)
            if node.given in chain:
                raise ValueError(
                    "Tasks are given each other in a cycle: " + " -> ".join(chain + [node.given]) + "."
                )
            node = by_name.get(node.given)


def _rows(mask, like):
    """A (batch, 1) or (batch,) mask shaped to multiply `like` (batch, ...)."""
    mask = tf.reshape(mask, [-1])
    return tf.reshape(mask, tf.concat([[-1], tf.ones([tf.rank(like) - 1], tf.int32)], 0))


def positive(labels: Mapping, weights: Mapping, name: str):
    """Where task `name`'s label is 1 and counted (weight > 0), as a (batch,) float mask."""
    y, w = tf.reshape(labels[name], [-1]), tf.reshape(weights[name], [-1])
    return tf.cast((y > 0.5) & (w > 0), w.dtype)


def sample_spaces(tasks: Sequence[Task], y: Mapping, y_pred: Mapping, labels: Mapping, weights: dict,
                  *, check: bool = True) -> dict:
    """The prepared `weights` with each conditional task's examples outside its sample space zero-weighted.

    A given task the model lacks (a single-task baseline, a task group) is
    read from the labels `y` alone. With `check`, tasks built with
    `inconsistent="raise"` assert their labels in the step. Models without
    conditional tasks get `weights` back as they are.

    Example:
    >>> tasks = [Binary("buy", given="click")]   # the click task is not in this model
    >>> y = {"click": tf.constant([1.0, 0.0]), "buy": tf.constant([1.0, 0.0])}
    >>> w = sample_spaces(tasks, y, {"buy": tf.zeros((2, 1))}, {"buy": tf.ones((2, 1))}, {"buy": tf.ones((2, 1))})
    >>> w["buy"].numpy().ravel().tolist()
    [1.0, 0.0]
    """
    if all(t.given is None for t in tasks):
        return weights
    labels, weights = dict(labels), dict(weights)
    outside = external_parents(tasks)
    for parent in outside:
        if parent.label not in y:
            raise ValueError(
                f"No labels for {parent.name!r}, which task(s) "
                f"{[t.name for t in tasks if t.given == parent.name]} are given; the labels are {sorted(y)}."
            )
        like = next(y_pred[t.name] for t in tasks if t.given == parent.name)
        labels[parent.name], weights[parent.name] = parent.prepare(
            y[parent.label], tf.zeros((tf.shape(like)[0], 1), like.dtype), check=check
        )
    checks = consistency_checks(tasks, labels, weights) if check else []
    if checks:
        with tf.control_dependencies(checks):
            weights = {k: tf.identity(v) for k, v in weights.items()}
    weights = condition(tasks, labels, weights)
    for parent in outside:
        del weights[parent.name]
    return weights


def consistency_checks(tasks: Sequence[Task], labels: Mapping, weights: Mapping) -> list:
    """In-step asserts, for the tasks built with `inconsistent="raise"`, that no counted label of 1
    sits where the given task's counted label is 0 (data checked before the step is counted there
    instead; see `keras_mtl.data.checks.check_conditions`). Returns the assert ops (none in eager
    mode, where a failing assert raises at once).

    Example:
    >>> tasks = [Binary("click"), Binary("buy", given="click", inconsistent="raise")]
    >>> labels = {"click": tf.constant([[0.0]]), "buy": tf.constant([[1.0]])}
    >>> try:
    ...     consistency_checks(tasks, labels, {"click": tf.ones((1, 1)), "buy": tf.ones((1, 1))})
    ... except tf.errors.InvalidArgumentError as e:
    ...     print(e.message.split("assertion failed: ")[1].split(" [Op")[0])
    [Task buy (given click): a label of 1 where click is 0, and inconsistent=raise; examples in the batch:] [1]
    """
    checks = []
    for t in tasks:
        if t.inconsistent != "raise" or not isinstance(t, Binary) or t.given not in labels:
            continue
        parent_zero = (tf.reshape(labels[t.given], [-1]) < 0.5) & (tf.reshape(weights[t.given], [-1]) > 0)
        child_one = (tf.reshape(labels[t.name], [-1]) > 0.5) & (tf.reshape(weights[t.name], [-1]) > 0)
        bad = tf.reduce_sum(tf.cast(parent_zero & child_one, tf.int32))
        # Unquoted names: the op prints its message's quotes escaped (see Task.label_checks).
        message = f"Task {t.name} (given {t.given}): a label of 1 where {t.given} is 0, and inconsistent=raise; examples in the batch:"
        check = tf.raw_ops.Assert(condition=tf.equal(bad, 0), data=[message, bad])
        if not tf.executing_eagerly():
            checks.append(check)
    return checks


def condition(tasks: Sequence[Task], labels: Mapping, weights: dict) -> dict:
    """`weights` with each conditional task's examples outside its sample space zero-weighted.

    Parents come first, so a task given a conditional task counts only the
    examples where its whole chain is positive.

    Example:
    >>> tasks = [Binary("click"), Binary("buy", given="click")]
    >>> labels = {"click": tf.constant([[1.0], [0.0], [1.0]]), "buy": tf.constant([[1.0], [0.0], [0.0]])}
    >>> weights = {"click": tf.ones((3, 1)), "buy": tf.constant([[1.0], [0.0], [1.0]])}
    >>> condition(tasks, labels, weights)["buy"].numpy().ravel().tolist()
    [1.0, 0.0, 1.0]
    """
    weights = dict(weights)
    done: set[str] = set()
    pending = [t for t in tasks if t.given is not None]
    while pending:
        waiting = {p.name for p in pending}
        ready = [t for t in pending if t.given not in waiting]
        for t in ready:
            weights[t.name] = weights[t.name] * _rows(positive(labels, weights, t.given), weights[t.name])
            done.add(t.name)
        pending = [t for t in pending if t.name not in done]
    return weights


def joint_targets(task: Task, labels: Mapping, weights: Mapping) -> tuple[tf.Tensor, tf.Tensor]:
    """`(label, weight)` of "given and task both positive" over the entire space.

    `weights` are conditioned (`condition`): where the parent is positive the
    task's own label and weight hold; where it is negative (and counted) the
    joint label is 0 with the parent's weight; where the parent is missing
    the example does not count.

    Example:
    >>> task = Binary("buy", given="click")
    >>> labels = {"click": tf.constant([[1.0], [0.0], [0.0]]), "buy": tf.constant([[1.0], [0.0], [0.0]])}
    >>> weights = {"click": tf.constant([[1.0], [1.0], [0.0]]), "buy": tf.constant([[1.0], [0.0], [0.0]])}
    >>> y, w = joint_targets(task, labels, weights)
    >>> y.numpy().ravel().tolist(), w.numpy().ravel().tolist()
    ([1.0, 0.0, 0.0], [1.0, 1.0, 0.0])
    """
    parent = _rows(positive(labels, weights, task.given), labels[task.name])
    y = tf.cast(labels[task.name], weights[task.name].dtype) * parent
    w = tf.where(parent > 0, weights[task.name], tf.cast(weights[task.given], weights[task.name].dtype))
    return y, w


def excess(task: Task, y_pred: Mapping) -> tf.Tensor:
    """`at_most_weight` x max(p(task) - p(at_most), 0), per example (AITM's calibrator).

    Example:
    >>> task = Binary("buy", at_most="click", at_most_weight=2.0)
    >>> excess(task, {"click": tf.constant([[0.5], [0.2]]), "buy": tf.constant([[0.1], [0.3]])}).numpy().astype(float).round(3).tolist()
    [[0.0], [0.2]]
    """
    return task.at_most_weight * tf.nn.relu(y_pred[task.name] - tf.cast(y_pred[task.at_most], y_pred[task.name].dtype))


def joint_prediction(task: Task, y_pred: Mapping) -> tf.Tensor:
    """p(given) x p(task | given)."""
    return y_pred[task.given] * y_pred[task.name]


class JointAUC(keras.metrics.Metric):
    """For each conditional Binary task, the AUC of p(given) x p(task | given) against both labels
    positive, over the entire space; logged as `<given>_and_<task>_auc`.

    Example:
    >>> m = JointAUC([Binary("buy", given="click")])
    >>> labels = {"click": tf.constant([[1.0], [0.0], [1.0]]), "buy": tf.constant([[1.0], [0.0], [0.0]])}
    >>> weights = {"click": tf.ones((3, 1)), "buy": tf.ones((3, 1))}
    >>> preds = {"click": tf.constant([[0.9], [0.2], [0.8]]), "buy": tf.constant([[0.9], [0.9], [0.1]])}
    >>> m.update_state(labels, preds, weights)
    >>> {k: round(float(v), 3) for k, v in m.result().items()}
    {'click_and_buy_auc': 1.0}
    """

    def __init__(self, tasks: Sequence[Task], name: str = "joint_auc", **kwargs):
        super().__init__(name=name, **kwargs)
        self.tasks = list(tasks)
        self.aucs = [keras.metrics.AUC(name=f"{joint_name(t)}_auc", num_thresholds=_AUC_THRESHOLDS) for t in self.tasks]

    def update_state(self, labels, y_pred, weights):
        for task, auc in zip(self.tasks, self.aucs):
            y, w = joint_targets(task, labels, weights)
            auc.update_state(y, joint_prediction(task, y_pred), sample_weight=w)

    def result(self):
        return {auc.name: auc.result() for auc in self.aucs}

    def reset_state(self):
        for auc in self.aucs:
            auc.reset_state()
