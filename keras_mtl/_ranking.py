"""Ranking losses and NDCG over the examples of each group (a query, a user) in a batch.

The losses compare examples of the same group, so under a `tf.distribute`
strategy each replica first gathers every replica's scores, labels and
groups (`ReplicaContext.all_gather`, whose gradient returns each replica its
own slice): the loss is the global batch's, as on one device, and each
replica takes its 1/replicas share. The pairwise loss compares every pair
of examples (batch x batch masks, O(batch^2)); the listwise loss and NDCG
sort the batch by group and work per group with segment sums
(O(batch log batch)). Static shapes throughout: everything compiles under
XLA.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl import _masking as masking
from keras_mtl._sorting import sorted_runs

LOSSES = ("pairwise", "listwise")


def group_ids(groups) -> tf.Tensor:
    """Group keys as int64 of shape (batch,): integers as they are, strings hashed.

    Example:
    >>> group_ids(tf.constant([[3], [3], [7]])).numpy().tolist()
    [3, 3, 7]
    """
    groups = tf.convert_to_tensor(groups)
    groups = tf.reshape(groups, [-1])
    if groups.dtype == tf.string:
        return tf.strings.to_hash_bucket_fast(groups, 2**62)
    if groups.dtype.is_floating:
        return tf.cast(tf.round(groups), tf.int64)
    return tf.cast(groups, tf.int64)


def gather_replicas(*tensors):
    """Each tensor concatenated over the replicas in sync, in replica order (itself on one device)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tensors
    return tuple(ctx.all_gather(t, axis=0) for t in tensors)


def _global(scores, labels, weights, groups):
    """(scores, labels, present, group ids), flat, over the global batch; `present` is float 0/1."""
    scores = tf.reshape(scores, [-1])
    labels = tf.cast(tf.reshape(labels, [-1]), scores.dtype)
    present = tf.cast(tf.reshape(weights, [-1]) > 0, scores.dtype)
    return gather_replicas(scores, labels, present, group_ids(groups))


def _flat(scores, labels, weights, groups):
    """(scores, labels, present, same-group matrix) over the global batch; `present` is float 0/1."""
    scores, labels, present, groups = _global(scores, labels, weights, groups)
    same = tf.cast(tf.equal(groups[:, None], groups[None, :]), scores.dtype)
    same = same * present[:, None] * present[None, :]
    return scores, labels, present, same


def _group_runs(groups, present) -> tf.Tensor:
    """Each example's group number in [0, batch): the labelled examples of one group share one,
    and a group's unlabelled examples share another (they count in no group)."""
    order, runs, _ = sorted_runs(tf.cast(present <= 0, tf.int32), groups)
    return tf.scatter_nd(order[:, None], runs, tf.shape(groups))


def _ranks_within(values, runs) -> tf.Tensor:
    """Each example's rank (1, 2, ...) by `values`, highest first, among the examples of its run;
    ties go to the earlier example."""
    n = tf.shape(values)[0]
    # top_k (what a descending argsort is) puts the lower index first among equal values.
    position = tf.scatter_nd(tf.argsort(values, direction="DESCENDING", stable=True)[:, None], tf.range(n), [n])
    # One sort by (run, position by value): the keys are distinct.
    order = tf.argsort(tf.cast(runs, tf.int64) * tf.cast(n, tf.int64) + tf.cast(position, tf.int64))
    sorted_runs = tf.gather(runs, order)
    first = tf.math.unsorted_segment_min(tf.range(n), sorted_runs, n)
    rank = tf.range(n) - tf.gather(first, sorted_runs) + 1
    return tf.cast(tf.scatter_nd(order[:, None], rank, [n]), values.dtype)


def pairwise_logistic(scores, labels, weights, groups) -> tuple[tf.Tensor, tf.Tensor]:
    """RankNet's loss: the mean over pairs (i, j) of one group with label_i > label_j of
    log(1 + exp(-(s_i - s_j))); returns (this replica's share, the number of pairs).

    Example:
    >>> loss, pairs = pairwise_logistic(tf.constant([2.0, 0.0, 1.0]), tf.constant([1.0, 0.0, 0.0]),
    ...                                 tf.ones(3), tf.constant([1, 1, 2]))
    >>> round(float(loss), 4), float(pairs)  # one pair: log(1 + e^-2)
    (0.1269, 1.0)
    """
    scores, labels, _, same = _flat(scores, labels, weights, groups)
    pairs = same * tf.cast(labels[:, None] > labels[None, :], scores.dtype)
    losses = tf.math.softplus(-(scores[:, None] - scores[None, :]))
    count = tf.reduce_sum(pairs)
    loss = tf.math.divide_no_nan(tf.reduce_sum(tf.math.multiply_no_nan(losses, pairs)), count)
    return masking.per_replica_share(loss), count


def listwise_softmax(scores, labels, weights, groups) -> tuple[tf.Tensor, tf.Tensor]:
    """ListNet's top-one loss: for each group with a positive label sum, the cross-entropy
    -sum_i (y_i / sum_j y_j) log softmax(s)_i over its labelled examples; the mean over
    those groups. Returns (this replica's share, the number of such groups).

    Example:
    >>> loss, lists = listwise_softmax(tf.constant([1.0, 0.0, 5.0]), tf.constant([1.0, 0.0, 1.0]),
    ...                                tf.ones(3), tf.constant([1, 1, 2]))
    >>> round(float(loss), 4), float(lists)  # group 1: -log(e / (e + 1)); group 2: -log(1) = 0
    (0.1566, 2.0)
    """
    scores, labels, present, groups = _global(scores, labels, weights, groups)
    labels = labels * present
    runs = _group_runs(groups, present)
    n = tf.shape(scores)[0]
    # log softmax of s_i within its group: s_i - logsumexp over the group's labelled
    # examples (the group's maximum taken out first, as reduce_logsumexp does).
    top = tf.gather(tf.stop_gradient(tf.math.unsorted_segment_max(scores, runs, n)), runs)
    log_softmax = scores - top - tf.math.log(tf.gather(tf.math.unsorted_segment_sum(tf.exp(scores - top), runs, n), runs))
    totals = tf.math.unsorted_segment_sum(labels, runs, n)  # each group's label sum
    terms = -tf.math.divide_no_nan(labels, tf.gather(totals, runs)) * log_softmax * present
    lists = tf.reduce_sum(tf.cast(totals > 0, scores.dtype))
    loss = tf.math.divide_no_nan(tf.reduce_sum(terms), lists)
    return masking.per_replica_share(loss), lists


def ndcg(scores, labels, weights, groups, k: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """The sum over groups (with a positive label) of NDCG@k, gains 2^y - 1 and discount
    1/log2(1 + rank), and the number of such groups, over the global batch.

    Ties in score are broken by position in the batch.

    Example:
    >>> total, lists = ndcg(tf.constant([0.1, 0.9, 0.5]), tf.constant([1.0, 0.0, 0.0]),
    ...                     tf.ones(3), tf.constant([1, 1, 1]))
    >>> round(float(total / lists), 4)  # the relevant one ranked 3rd: 1/log2(4) = 0.5
    0.5
    """
    scores, labels, present, groups = _global(scores, labels, weights, groups)
    runs = _group_runs(groups, present)
    n = tf.shape(scores)[0]
    gains = (tf.pow(tf.cast(2.0, scores.dtype), labels) - 1.0) * present
    log2 = tf.math.log(tf.cast(2.0, scores.dtype))

    def dcg(values):  # each group's DCG with its examples ranked by `values`
        rank = _ranks_within(values, runs)
        discount = log2 / tf.math.log(1.0 + rank)
        if k is not None:
            discount = discount * tf.cast(rank <= k, scores.dtype)
        return tf.math.unsorted_segment_sum(gains * discount, runs, n)

    actual, ideal = dcg(scores), dcg(labels)
    counted = tf.cast(ideal > 0, scores.dtype)
    return tf.reduce_sum(tf.math.divide_no_nan(actual, ideal) * counted), tf.reduce_sum(counted)


class GroupNDCG(keras.metrics.Metric):
    """For each Ranking task, the mean NDCG@k over the groups of each batch, logged as `<task>_ndcg`.

    Example:
    >>> from keras_mtl.tasks import Ranking
    >>> m = GroupNDCG([Ranking("relevance", group="query")])
    >>> m.update_state({"query": tf.constant([1, 1, 2, 2])}, {"relevance": tf.constant([1.0, 0.0, 0.0, 2.0])},
    ...                {"relevance": tf.constant([[0.9], [0.1], [0.8], [0.3]])}, {"relevance": tf.ones(4)})
    >>> round(float(m.result()["relevance_ndcg"]), 4)  # query 1 in order: 1; query 2 reversed: (3 / log2(3)) / 3
    0.8155
    """

    def __init__(self, tasks, name: str = "group_ndcg", **kwargs):
        super().__init__(name=name, **kwargs)
        self.tasks = list(tasks)
        self.means = [keras.metrics.Mean(name=f"{t.name}_ndcg") for t in self.tasks]

    def update_state(self, y, labels, y_pred, weights):
        for task, mean in zip(self.tasks, self.means):
            total, lists = ndcg(y_pred[task.name], labels[task.name], weights[task.name], y[task.group], task.ndcg_at)
            # Mean's state is (sum of values x weights, sum of weights): one value, the
            # batch's mean, weighted by its number of groups.
            mean.update_state(tf.math.divide_no_nan(total, lists), sample_weight=lists)

    def result(self):
        return {mean.name: mean.result() for mean in self.means}

    def reset_state(self):
        for mean in self.means:
            mean.reset_state()
