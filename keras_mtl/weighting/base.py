"""The two base classes every loss-balancing method builds on.

`Weighting` methods combine the per-task *losses* (fixed, uncertainty, DWA,
...). `GradientWeighting` methods combine per-task *gradients* (PCGrad,
MGDA, CAGrad, ...). Both are Keras layers, so whatever state a method keeps
(learned log-variances, loss histories, EMA targets) is tracked, trained and
saved with the model.

Distribution contract: each replica holds its *share* of every task's global
masked mean loss (see `keras_mtl._masking`), and Keras' optimizer sums
gradients over replicas. A method that returns a total linear in the shares
(with weights computed from the all-reduced global losses) therefore trains
exactly as on one device. Gradient methods never see per-replica gradients:
the plumbing in `keras_mtl.weighting.step` all-reduces first.
"""

from __future__ import annotations

import itertools

import keras
import tensorflow as tf

from keras_mtl import _masking


class Weighting(keras.layers.Layer):
    """Base of loss-based methods: `combine` turns losses into one training loss.

    Subclasses set `key` (the name `compile(weighting=...)` accepts) and
    implement `weights` (or override `combine` when the total is not a
    weighted sum, e.g. uncertainty's extra log-variance term).
    """

    key = ""
    uses_gradients = False

    def __init__(self, **kwargs):
        kwargs.setdefault("name", f"weighting_{self.key}" if self.key else None)
        super().__init__(**kwargs)
        self.task_names: list[str] = []

    def attach(self, model) -> None:
        """Called by `MultiTaskModel.compile`; creates the method's state for the model's tasks."""
        self.task_names = [t.name for t in model.tasks]
        if not self.built:
            self.build_state(len(self.task_names))
            self.built = True

    def build_state(self, num_tasks: int) -> None:
        """Creates variables; most methods keep none."""

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def weights_for(self, losses: tf.Tensor, training: bool) -> tf.Tensor:
        """The (num_tasks,) task weights for this step, from the *global* losses."""
        return tf.ones_like(losses)

    def constant_weights(self) -> list[float] | None:
        """The task weights, in task order, if they never change (then logging them costs the step nothing); else None."""
        return None

    def combine(self, shares: tf.Tensor, losses: tf.Tensor, training: bool):
        """Returns `(this replica's share of the training loss, task weights)`.

        Args:
            shares: (num_tasks,) this replica's shares of each task's loss.
            losses: (num_tasks,) the global losses (the shares summed over replicas).
            training: False during evaluation: state must not change.
        """
        w = tf.stop_gradient(self.weights_for(losses, training))
        return tf.reduce_sum(w * shares), w

    def callbacks(self) -> list:
        """Keras callbacks `fit` adds for this method (e.g. epoch-level loss history)."""
        return []

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        return config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class GradientWeighting(Weighting):
    """Base of gradient-based methods: `aggregate` maps task gradients to combination weights.

    The plumbing (`keras_mtl.weighting.step`) computes each task's gradient on
    the shared variables (`mode="parameters"`) or on the shared
    representation (`mode="representation"`, one backward pass through the
    trunk instead of one per task), sums them over replicas, and hands the
    method their Gram matrix `K[i, j] = g_i . g_j` and the global losses. The
    method returns weights `w`; the update on the shared part is
    `sum_t w_t g_t`, and task-specific layers get their own task's gradient.
    Every method here that is a linear combination of task gradients (PCGrad,
    MGDA, CAGrad, IMTL, Aligned-MTL, Nash-MTL, GradVac, GradNorm) needs only
    `K`, which is what makes them cheap and exact under any strategy.
    Elementwise methods (GradDrop) override `aggregate_vectors` instead.
    """

    uses_gradients = True
    modes = ("parameters", "representation")

    def __init__(self, mode: str = "parameters", **kwargs):
        if mode not in self.modes:
            raise ValueError(
                f"{type(self).__name__}: mode must be one of {list(self.modes)}, got {mode!r}."
            )
        super().__init__(**kwargs)
        self.mode = mode

    def aggregate(self, gram: tf.Tensor, losses: tf.Tensor, training: bool) -> tf.Tensor:
        """(num_tasks,) weights of the task gradients, from their Gram matrix and the losses."""
        return tf.ones_like(losses)

    aggregate_vectors = None  # or a function (grads (T, P), losses) -> combined (P,)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def step_seed(counter: tf.Variable) -> tf.Tensor:
    """A seed equal on every replica: stateless random draws made from it agree everywhere."""
    return tf.stack([tf.cast(counter, tf.int64), tf.constant(20260, tf.int64)])


def pairwise_surgery(gram: tf.Tensor, num_tasks: int, seed: tf.Tensor, update) -> tf.Tensor:
    """Gradient surgery in coefficient form, shared by PCGrad and GradVac.

    For each task i, visits every other task j in a random order (drawn
    statelessly from `seed`, so the same on every replica) and lets
    `update(i, j, c, e_j)` rewrite c, task i's modified gradient written as
    coefficients over the original gradients (`gram` gives every dot
    product). Returns the coefficients of the sum of the modified gradients.

    Example:
    >>> K = tf.constant([[1.0, -1.0], [-1.0, 2.0]])
    >>> w = pairwise_surgery(K, 2, tf.constant([0, 0], tf.int64), lambda i, j, c, e: c)
    >>> [float(v) for v in w]  # an update that changes nothing: the plain sum
    [1.0, 1.0]
    """
    coefficients = []
    for i in range(num_tasks):
        c = tf.one_hot(i, num_tasks, dtype=gram.dtype)
        order = _random_order(num_tasks, seed + i)
        for k in range(num_tasks):
            j = order[k]
            c = tf.where(tf.equal(j, i), c, update(i, j, c, tf.one_hot(j, num_tasks, dtype=gram.dtype)))
        coefficients.append(c)
    return tf.add_n(coefficients)


def _random_order(num_tasks: int, seed: tf.Tensor) -> tf.Tensor:
    """A uniformly random permutation of range(num_tasks), drawn statelessly from `seed`.

    `stateless_shuffle` has no XLA kernel, and a sort of random keys inside an
    XLA-compiled step crashed TensorFlow 2.21's CPU runtime when a second
    compiled model ran in the same process; a row of the (small) table of
    all permutations needs neither.
    """
    if num_tasks <= 2:
        return tf.range(num_tasks)  # at most one other task: nothing to order
    if num_tasks <= 6:
        permutations = list(itertools.permutations(range(num_tasks)))
        row = tf.random.stateless_uniform([], seed=seed, maxval=len(permutations), dtype=tf.int32)
        return tf.gather(tf.constant(permutations, tf.int32), row)
    return tf.argsort(tf.random.stateless_uniform([num_tasks], seed=seed))


def state_weight(layer: keras.layers.Layer, name: str, shape, initializer="zeros", dtype="float32"):
    """A non-trainable variable that every replica updates to the same value.

    Methods compute their state updates from globally reduced quantities, so
    each replica would write the same value; only the first replica's write
    is kept.
    """
    return layer.add_weight(
        name=name,
        shape=shape,
        initializer=initializer,
        trainable=False,
        dtype=dtype,
        aggregation="only_first_replica",
    )


def global_losses(shares: tf.Tensor) -> tf.Tensor:
    """The global losses from this replica's shares."""
    return _masking.global_sum(shares)
