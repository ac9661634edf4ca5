"""Masked means that give the same value on one device and on many.

Keras' `mean_with_sample_weight` divides each replica's weighted loss sum by
that replica's own weight sum, so under `tf.distribute` a task whose labels are
unevenly spread across replicas gets a different gradient than on one device.
Here the denominator is the weight sum over *all* replicas, and each replica
returns its share of the global mean; Keras' optimizer sums gradients across
replicas, which then equals the one-device gradient exactly.
"""

from __future__ import annotations

import tensorflow as tf


def global_sum(value: tf.Tensor) -> tf.Tensor:
    """Sum of `value` over all replicas in sync (the value itself on one device).

    Example:
    >>> float(global_sum(tf.constant(3.0)))
    3.0
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def masked_mean(values: tf.Tensor, weights: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """This replica's share of the weighted mean of `values` over every replica, and the global weight.

    Units with weight 0 (missing labels, padding) count for nothing, and a
    batch with no weight at all gives 0 rather than NaN. The weight sum is
    returned too, so that epoch averages can weigh batches by their labels.

    Example:
    >>> mean, count = masked_mean(tf.constant([1.0, 5.0, 3.0]), tf.constant([1.0, 0.0, 1.0]))
    >>> float(mean), float(count)
    (2.0, 2.0)
    """
    weights = tf.cast(weights, values.dtype)
    # 0 where the weight is 0, even for a NaN/inf loss on a masked (dummy)
    # unit, which must not leak into the sum; one op, and so is its gradient.
    total = tf.reduce_sum(tf.math.multiply_no_nan(values, weights))
    count = global_sum(tf.reduce_sum(weights))
    return tf.math.divide_no_nan(total, count), count


def num_replicas() -> int:
    """Replicas in sync under the current strategy (1 outside any strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def per_replica_share(value: tf.Tensor) -> tf.Tensor:
    """Scales a loss term that every replica computes in full to its 1/replicas share.

    Example:
    >>> float(per_replica_share(tf.constant(4.0)))
    4.0
    """
    n = num_replicas()
    return value if n == 1 else value / n


def from_replica_share(value: tf.Tensor) -> tf.Tensor:
    """Inverse of `per_replica_share`: what a metric averaged over replicas should see."""
    n = num_replicas()
    return value if n == 1 else value * n
