"""Ranking losses and NDCG over the examples of each group (a query, a user) in a batch.

The losses compare examples of the same group, so under a `tf.distribute`
strategy each replica first gathers every replica's scores, labels and
groups (`ReplicaContext.all_gather`, whose gradient returns each replica its
own slice): the loss is the global batch's, as on one device, and each
replica takes its 1/replicas share. Everything is dense (batch x batch
masks): static shapes, XLA-compilable, O(batch^2) memory.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl import _masking as masking

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


def _flat(scores, labels, weights, groups):
    """(scores, labels, present, same-group matrix) over the global batch; `present` is float 0/1."""
    scores = tf.reshape(scores, [-1])
    labels = tf.cast(tf.reshape(labels, [-1]), scores.dtype)
    present = tf.cast(tf.reshape(weights, [-1]) > 0, scores.dtype)
    scores, labels, present, groups = gather_replicas(scores, labels, present, group_ids(groups))
    same = tf.cast(tf.equal(groups[:, None], groups[None, :]), scores.dtype)
    same = same * present[:, None] * present[None, :]
    return scores, labels, present, same


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
    scores, labels, present, same = _flat(scores, labels, weights, groups)
    labels = labels * present
    # log softmax of s_i within its group: s_i - logsumexp over the group's labelled examples.
    masked = tf.where(same > 0, tf.broadcast_to(scores[None, :], tf.shape(same)), tf.cast(-1e9, scores.dtype))
    log_softmax = scores - tf.reduce_logsumexp(masked, axis=1)
    total = tf.linalg.matvec(same, labels)  # each example's group label sum
    terms = -tf.math.divide_no_nan(labels, total) * log_softmax * present
    size = tf.reduce_sum(same, axis=1)
    lists = tf.reduce_sum(tf.math.divide_no_nan(tf.cast(total > 0, scores.dtype) * present, size))
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
    scores, labels, present, same = _flat(scores, labels, weights, groups)
    n = tf.shape(scores)[0]
    earlier = tf.cast(tf.range(n)[None, :] < tf.range(n)[:, None], scores.dtype)

    def ranks(values):
        above = tf.cast(values[None, :] > values[:, None], scores.dtype)
        tied = tf.cast(tf.equal(values[None, :], values[:, None]), scores.dtype) * earlier
        return 1.0 + tf.reduce_sum(same * (above + tied), axis=1)

    rank, ideal_rank = ranks(scores), ranks(labels)
    gains = (tf.pow(tf.cast(2.0, scores.dtype), labels) - 1.0) * present
    log2 = tf.math.log(tf.cast(2.0, scores.dtype))

    def dcg(r):
        discount = log2 / tf.math.log(1.0 + r)
        if k is not None:
            discount = discount * tf.cast(r <= k, scores.dtype)
        return tf.linalg.matvec(same, gains * discount)  # each example's group DCG

    actual, ideal = dcg(rank), dcg(ideal_rank)
    size = tf.reduce_sum(same, axis=1)
    counted = tf.cast(ideal > 0, scores.dtype) * present
    total = tf.reduce_sum(tf.math.divide_no_nan(tf.math.divide_no_nan(actual, ideal) * counted, size))
    return total, tf.reduce_sum(tf.math.divide_no_nan(counted, size))


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
