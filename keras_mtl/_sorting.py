"""Stable sorts by several keys, and the runs of equal keys they leave: static shapes, XLA-compilable."""

from __future__ import annotations

import tensorflow as tf


def sorted_runs(*keys):
    """Sorts by `keys` (the first the primary one), stably, and numbers the runs of equal keys.

    Each key is a 1-D tensor over the same elements. Returns `(order, run,
    is_start)`: the permutation that sorts, each sorted element's run number
    (0, 1, ...) and whether it is the first of its run. Written without
    `tf.unique`, so it compiles under XLA. `optimizers.LazyAdam` groups a
    batch's repeated ids with it, Ranking tasks the examples of each group.

    Example:
    >>> order, run, is_start = sorted_runs(tf.constant([0, 1, 0, 0]), tf.constant([7, 5, 5, 7]))
    >>> order.numpy().tolist(), run.numpy().tolist(), is_start.numpy().tolist()
    ([2, 0, 3, 1], [0, 1, 1, 2], [True, True, False, True])
    """
    # Least significant key first: each later stable sort keeps the order of its ties.
    order = tf.argsort(keys[-1], stable=True)
    for key in reversed(keys[:-1]):
        order = tf.gather(order, tf.argsort(tf.gather(key, order), stable=True))
    is_start = tf.range(tf.shape(order)[0]) == 0
    for key in keys:
        key = tf.gather(key, order)
        is_start = is_start | tf.not_equal(key, tf.roll(key, 1, 0))
    return order, tf.cumsum(tf.cast(is_start, tf.int32)) - 1, is_start
