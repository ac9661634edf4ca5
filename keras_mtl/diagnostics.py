"""What practitioners ask of a multi-task model: do task gradients conflict, which tasks help each other?

Pure functions on a model and one batch; `keras_mtl.callbacks` calls them
every N steps and writes the answers to TensorBoard.
"""

from __future__ import annotations

import itertools
import weakref
import collections.abc
import typing

import keras
import numpy as np
import tensorflow as tf

from keras_mtl.weighting.step import per_task_gradients


def task_gradients(model, x, y, sample_weight=None) -> tf.Tensor:
    """(T, P): each task's gradient on the model's shared variables for one batch.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Regression("a"), mtl.tasks.Regression("b")],
    ...                              trunk=mtl.trunks.mlp([3]))
    >>> m.compile(optimizer="sgd")
    >>> task_gradients(m, np.ones((4, 2), "float32"), {"a": np.ones(4), "b": np.zeros(4)}).shape
    TensorShape([2, 9])
    """
    return task_gradients_and_losses(model, x, y, sample_weight)[0]


def task_gradients_and_losses(model, x, y, sample_weight=None, *, check_labels: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """`task_gradients` (T, P) and the task losses (T,) they are the gradients of, from one forward pass.

    `check_labels=False` leaves out the in-graph label asserts, for labels
    already checked (as `traced_probe` does in numpy). It is the probe's own
    computation (`traced_probe`) at the current weights, run as it is called.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Regression("a"), mtl.tasks.Regression("b")],
    ...                              trunk=mtl.trunks.mlp([3]))
    >>> m.compile(optimizer="sgd")
    >>> [t.shape for t in task_gradients_and_losses(m, np.ones((4, 2), "float32"), {"a": np.ones(4), "b": np.ones(4)})]
    [TensorShape([2, 9]), TensorShape([2])]
    """
    return _probe_graph(
        model, x, y, sample_weight, tf.zeros([_shared_size(model)], tf.float32), tf.constant(0.0), tf.constant(True),
        check_labels=check_labels,
    )


def cosine_matrix(grads: tf.Tensor) -> np.ndarray:
    """Pairwise cosine similarities of task gradients; below 0 means the tasks conflict.

    Example:
    >>> cosine_matrix(tf.constant([[1.0, 0.0], [-1.0, 0.0]])).tolist()
    [[1.0, -1.0], [-1.0, 1.0]]
    """
    g = np.asarray(grads, dtype=np.float64)
    norms = np.linalg.norm(g, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    cos = (g @ g.T) / np.outer(safe, safe)
    cos[np.outer(norms, norms) == 0] = 0.0
    return np.clip(cos, -1.0, 1.0)


class Probed(typing.NamedTuple):
    """What a probe measured on one batch at the model's current weights.

    `gradients` (T, P): each task's gradient on the shared variables;
    `losses` (T,): the task losses; `lookahead_losses` (T, T) or None: row i
    holds every task's loss after one SGD step on task i's gradient (only
    when the probe was asked for it, see `traced_probe`).
    """

    gradients: tf.Tensor
    losses: tf.Tensor
    lookahead_losses: tf.Tensor | None = None


_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def traced_probe(model):
    """A function `probe(x, y, sample_weight=None, lookahead_rate=None) -> Probed` for `model`, traced once.

    It returns `task_gradients_and_losses` and, given `lookahead_rate`, the
    losses after one SGD step of that rate on each task's gradient (the
    lookahead of `lookahead_affinity`). The model's weights are never
    written: a trial step's losses come from a forward pass that reads the
    trial values in place of the shared variables (`keras.StatelessScope`).

    One traced graph serves both kinds of call, kept while the model lives:
    tracing a function that runs the model costs far more than calling it
    (see benchmarks/RESULTS.md, "Monitoring"), so every probe (gradient
    conflict, task affinity) calls this one function rather than tracing its
    own. It takes the shared weights as `w - rate * direction` (the probe:
    rate 0; trial step i: task i's gradient) and runs its backward passes in
    a branch that trial steps skip: a trial costs a forward pass.

    Each call checks the batch's labels in numpy (`keras_mtl.data.checks`,
    the same rules as the training data) and the traced graph has no label
    asserts: on a census-income probe, tracing them was half the tracing
    time, where the numpy check of a batch is negligible.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Regression("a"), mtl.tasks.Regression("b")],
    ...                              trunk=mtl.trunks.mlp([3]))
    >>> m.compile(optimizer="sgd")
    >>> probe = traced_probe(m)
    >>> probe is traced_probe(m)
    True
    >>> probed = probe(np.ones((4, 2), "float32"), {"a": np.ones(4), "b": np.ones(4)}, lookahead_rate=0.1)
    >>> probed.gradients.shape, probed.losses.shape, probed.lookahead_losses.shape
    (TensorShape([2, 9]), TensorShape([2]), TensorShape([2, 2]))
    """
    if model not in _PROBES:
        # Weakly: the function is kept in a weak-keyed cache under the model,
        # and a value that held its key would keep it alive for good.
        ref = weakref.ref(model)
        # autograph=False: nothing here branches on tensor values in Python,
        # and AutoGraph's conversion of every layer call was most of the
        # tracing time (census-income: 1.3 s -> 0.47 s of CPU).
        traced = tf.function(lambda *args: _probe_graph(ref(), *args), autograph=False)
        # Tensors, not Python values: each new value would trace the function again.
        no_step, zero, yes, no = tf.zeros([_shared_size(model)], tf.float32), tf.constant(0.0), tf.constant(True), tf.constant(False)

        def probe(x, y, sample_weight=None, lookahead_rate: float | None = None) -> Probed:
            _check_labels(ref(), y)
            grads, losses = traced(x, y, sample_weight, no_step, zero, yes)
            if lookahead_rate is None:
                return Probed(grads, losses)
            rate = tf.constant(lookahead_rate, tf.float32)
            after = [traced(x, y, sample_weight, g, rate, no)[1] for g in tf.unstack(grads)]
            return Probed(grads, losses, tf.stack(after))

        _PROBES[model] = probe
    return _PROBES[model]


def _shared_size(model) -> int:
    """How many numbers the shared variables hold: the length of a probe's direction."""
    return sum(int(np.prod(v.shape)) for v in model.shared_variables)


def _probe_graph(model, x, y, sample_weight, direction, rate, with_gradients, *, check_labels: bool = False):
    """Task gradients and losses at the shared weights `w - rate * direction` (gradients only if `with_gradients`)."""
    shared = model.shared_variables
    sizes = [int(np.prod(v.shape)) for v in shared]
    with tf.GradientTape(persistent=True) as tape:
        # Gradients on these values are the gradients on the variables (w - 0 * d is w exactly).
        values = [
            v.value - tf.cast(rate * tf.reshape(d, v.shape), v.dtype)
            for v, d in zip(shared, tf.split(direction, sizes) if shared else [])
        ]
        with keras.StatelessScope(state_mapping=list(zip(shared, values))):
            y_pred = model(x, training=False)
        losses, _ = model.task_losses(y, y_pred, sample_weight, check=check_labels)
        task_losses = [losses[t.name] for t in model.tasks]
    grads = tf.cond(
        with_gradients,
        lambda: per_task_gradients(tape, task_losses, values)[0],
        lambda: tf.zeros([len(task_losses), sum(sizes)], tf.float32),
    )
    return grads, tf.stack(task_losses)


def _check_labels(model, y) -> None:
    from keras_mtl.data.checks import check_labels

    tasks = model.tasks
    if not isinstance(y, collections.abc.Mapping) and len(tasks) == 1:
        y = {tasks[0].label: y}
    for task in tasks:
        if isinstance(y, collections.abc.Mapping) and task.label in y:  # a missing entry fails in the model's own check
            check_labels(task, y[task.label], "the probe batch", require_some=False)


def lookahead_affinity(model, x, y, sample_weight=None, learning_rate: float = 0.1) -> tf.Tensor:
    """Inter-task affinity (Fifty et al., NeurIPS 2021): A[i, j] = 1 - L_j(after a step on task i) / L_j(now).

    The step is plain SGD with `learning_rate` on the shared variables only,
    using task i's gradient. A[i, j] > 0: training on task i lowers task j's
    loss (i helps j); < 0: it hurts. The model's weights are never written.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Regression("a"), mtl.tasks.Regression("b")],
    ...                              trunk=mtl.trunks.mlp([3]))
    >>> m.compile(optimizer="sgd")
    >>> lookahead_affinity(m, np.ones((4, 2), "float32"), {"a": np.ones(4), "b": np.ones(4)}).shape
    TensorShape([2, 2])
    """
    return affinity(traced_probe(model)(x, y, sample_weight, lookahead_rate=learning_rate))


def affinity(probed: Probed) -> tf.Tensor:
    """The lookahead affinity matrix of a probe asked for its lookahead (see `lookahead_affinity`).

    Example:
    >>> affinity(Probed(None, tf.constant([2.0, 4.0]), tf.constant([[1.0, 5.0], [2.0, 3.0]]))).numpy().tolist()
    [[0.5, -0.25], [0.0, 0.25]]
    """
    if probed.lookahead_losses is None:
        raise ValueError("This probe was not asked for its lookahead: call it with lookahead_rate.")
    return 1.0 - probed.lookahead_losses / tf.maximum(probed.losses, 1e-12)


def _partitions(items: list, k: int):
    """All ways to split `items` into exactly k non-empty unordered groups."""
    if k == 1:
        yield [items]
        return
    if len(items) == k:
        yield [[i] for i in items]
        return
    if len(items) < k:
        return
    first, rest = items[0], items[1:]
    for smaller in _partitions(rest, k - 1):
        yield [[first]] + smaller
    for part in _partitions(rest, k):
        for n in range(len(part)):
            yield part[:n] + [[first] + part[n]] + part[n + 1 :]


def suggest_groups(affinity: np.ndarray, names: typing.Sequence[str], num_groups: int) -> list[list[str]]:
    """Splits tasks into `num_groups` groups that maximise the affinity within groups.

    A grouping scores the sum, over tasks in groups of two or more, of the
    mean affinity onto that task from the others in its group (TAG's
    criterion); all partitions are searched, which is exact and fast up to ten
    or so tasks.

    Example:
    >>> A = np.array([[0, .5, -.5], [.5, 0, -.5], [-.5, -.5, 0]])
    >>> suggest_groups(A, ["a", "b", "c"], 2)
    [['a', 'b'], ['c']]
    """
    t = len(names)
    if not 1 <= num_groups <= t:
        raise ValueError(f"num_groups must be between 1 and the number of tasks ({t}), got {num_groups}.")
    if t > 12:
        raise ValueError(f"suggest_groups searches every partition; {t} tasks are too many (max 12).")
    a = np.asarray(affinity, dtype=float)

    def score(groups):
        total = 0.0
        for g in groups:
            if len(g) > 1:
                total += sum(np.mean([a[i, j] for i in g if i != j]) for j in g)
        return total

    best = max(_partitions(list(range(t)), num_groups), key=score)
    return sorted([[names[i] for i in sorted(g)] for g in best], key=lambda g: names.index(g[0]))


def heatmap_image(matrix: np.ndarray, low: float = -1.0, high: float = 1.0, cell: int = 24) -> np.ndarray:
    """A (1, H, W, 3) uint8 image of a matrix: blue for `low`, white for 0, red for `high`.

    Plain numpy, so TensorBoard images cost nothing at training time.

    Example:
    >>> heatmap_image(np.array([[1.0, -1.0]])).shape
    (1, 24, 48, 3)
    """
    m = np.clip((np.asarray(matrix, float) - low) / (high - low), 0.0, 1.0) * 2.0 - 1.0
    red = np.where(m > 0, 1.0, 1.0 + m)
    blue = np.where(m < 0, 1.0, 1.0 - m)
    green = 1.0 - np.abs(m)
    rgb = (np.stack([red, green, blue], -1) * 255).astype(np.uint8)
    return np.kron(rgb, np.ones((cell, cell, 1), np.uint8))[None]


def pairs(names: typing.Sequence[str]):
    """Unordered task pairs, in order.

    Example:
    >>> list(pairs(["a", "b", "c"]))
    [(0, 1), (0, 2), (1, 2)]
    """
    return itertools.combinations(range(len(names)), 2)


__all__ = [
    "Probed",
    "affinity",
    "cosine_matrix",
    "heatmap_image",
    "lookahead_affinity",
    "pairs",
    "suggest_groups",
    "task_gradients",
    "task_gradients_and_losses",
    "traced_probe",
]
