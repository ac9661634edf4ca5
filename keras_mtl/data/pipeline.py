"""tf.data pipelines over in-memory columns: batched by index, gathered per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
    from keras_mtl.tasks import Task


def pipeline_options() -> tf.data.Options:
    """The options keras_mtl sets on its pipelines.

    Autotuning is off: on 2-core machines TensorFlow's autotuner was measured
    to stall about 40% of epochs for ~0.55 s with no CPU in use (shared-bottom
    on census-income: 190k +- 48k examples/s with it, 271k +- 6k without).
    Deterministic order keeps runs reproducible. Under a multi-worker
    strategy in-memory data is sharded by element (there are no files to
    shard), so each global batch is the same set of rows as on one worker.

    Example:
    >>> pipeline_options().autotune.enabled
    False
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def from_columns(
    features: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray] | None = None,
    *,
    batch_size: int = 1024,
    shuffle: bool = False,
    seed: int = 0,
    tasks: Sequence[Task] | None = None,
) -> tf.data.Dataset:
    """Batches `(features, labels)` column dicts into a dataset of dicts of tensors.

    Rows are shuffled as a permutation of indices each epoch and each batch is
    one vectorised gather, which is far cheaper than slicing and re-batching
    every row of every column. With `shuffle=True`, epoch `e`'s order is a
    pure function of `(seed, e)`: the same on one device, on every replica
    and worker of a distribution strategy, and after a resume (see
    `SetEpoch`, which `MultiTaskModel.fit` adds by itself). With `tasks`, the columns are checked against
    them first (`keras_mtl.data.checks.check_columns`), so a bad label fails
    here, naming the task, value and row, rather than mid-training.

    Example:
    >>> ds = from_columns({"x": np.arange(5.0)}, {"y": np.arange(5.0)}, batch_size=2)
    >>> [int(b[0]["x"].shape[0]) for b in ds]
    [2, 2, 1]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    columns = {"features": dict(features)}
    if labels is not None:
        columns["labels"] = dict(labels)
    lengths = {
        f"{part}.{name}": len(col) for part, cols in columns.items() for name, col in cols.items()
    }
    if len(set(lengths.values())) != 1:
        raise ValueError(f"All columns must have the same number of rows; got {lengths}.")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("Cannot build a dataset from zero rows.")
    if tasks is not None:
        from keras_mtl.data.checks import check_columns

        check_columns(features, labels or {}, tasks)
    tensors = tf.nest.map_structure(tf.convert_to_tensor, columns)
    epoch = None
    if shuffle:
        epoch = _epoch_variable()
        indices = _epoch_permutations(n, batch_size, seed, epoch)
    else:
        indices = tf.data.Dataset.range(n).batch(batch_size)
    ds = indices.map(lambda idx: tf.nest.map_structure(lambda c: tf.gather(c, idx), tensors))
    if labels is not None:
        ds = ds.map(lambda b: (b["features"], b["labels"]))
    else:
        ds = ds.map(lambda b: b["features"])
    ds = ds.prefetch(2).with_options(pipeline_options())
    if epoch is not None:
        setattr(ds, _EPOCH_ATTR, epoch)
    return ds


# ---------------------------------------------------------------- shuffling
# The order of a shuffled pass is a pure function of (seed, epoch). Stateful
# shuffles (`Dataset.shuffle`, `Dataset.random`) key each pass on how many
# iterators were created before it, and Keras creates an extra one under any
# distribution strategy (its symbolic build reads one batch), so a
# distributed run saw every epoch's order one epoch late, and a resumed run
# restarted at epoch 0's order. Here the epoch comes from a variable that
# `SetEpoch` sets from Keras' own epoch index, which survives both.
_EPOCH_ATTR = "_keras_mtl_epoch"


def _epoch_variable() -> tf.Variable:
    # A plain host variable even inside a strategy scope (which would mirror a
    # `tf.Variable`): each process's input pipeline reads its own copy, and
    # `SetEpoch` sets them all to the same epoch.
    from tensorflow.python.ops import resource_variable_ops

    with tf.init_scope(), tf.device("/cpu:0"):
        return resource_variable_ops.ResourceVariable(
            0, dtype=tf.int64, trainable=False, name="keras_mtl_shuffle_epoch"
        )


def _epoch_permutations(n: int, batch_size: int, seed: int, epoch: tf.Variable) -> tf.data.Dataset:
    """Index batches of one pass: a permutation of range(n) keyed by (seed, epoch), cut in batches.

    The epoch is read when a pass starts and advanced by one, so without
    `SetEpoch` every pass still gets a new (deterministic) order.
    """
    num_batches = -(-n // batch_size)
    seed = tf.constant(seed, tf.int64)

    def batches(e):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, e]))
        return tf.data.Dataset.range(num_batches).map(lambda b: order[b * batch_size : (b + 1) * batch_size])

    passes = tf.data.Dataset.range(1).map(lambda _: epoch.assign_add(1) - 1)
    # flat_map hides the length; the pass has exactly num_batches batches.
    return passes.flat_map(batches).apply(tf.data.experimental.assert_cardinality(num_batches))


def shuffle_epoch(dataset) -> tf.Variable | None:
    """The epoch variable of a shuffled keras_mtl dataset (`from_columns(shuffle=True)`), else None.

    Example:
    >>> shuffle_epoch(from_columns({"x": np.arange(4.0)}, shuffle=True)).dtype
    tf.int64
    >>> shuffle_epoch(from_columns({"x": np.arange(4.0)})) is None
    True
    """
    return getattr(dataset, _EPOCH_ATTR, None)


class SetEpoch(keras.callbacks.Callback):
    """Before each epoch, sets a shuffled dataset's epoch to Keras' epoch index.

    A shuffled `from_columns` dataset (and so the `train` split of every
    bundled dataset) orders epoch `e` by a permutation that depends only on
    `(seed, e)`. This callback keeps `e` equal to the epoch `fit` is
    training, so the order is the same on one device, under MirroredStrategy
    and on every worker of MultiWorkerMirroredStrategy, and after
    `BackupAndRestore` resumes at epoch `e`. `MultiTaskModel.fit` adds it by
    itself when its `x` is such a dataset; pass it yourself to a plain
    `keras.Model`, or when you transform the dataset before `fit` (the
    transformed dataset no longer carries the epoch, so hand over the one
    that does). `fit` numbers epochs from `initial_epoch`: a second
    `fit(epochs=E)` replays the first one's orders unless it passes
    `initial_epoch`.

    Without it the dataset still reshuffles on every pass, keyed by the
    number of passes read so far.

    Example:
    >>> ds = from_columns({"x": np.arange(4.0)}, batch_size=4, shuffle=True)
    >>> SetEpoch(ds).on_epoch_begin(3)
    >>> int(shuffle_epoch(ds).numpy())
    3
    """

    def __init__(self, dataset):
        super().__init__()
        self.epoch = shuffle_epoch(dataset)
        if self.epoch is None:
            raise ValueError(
                "SetEpoch needs a shuffled keras_mtl dataset (from_columns(..., shuffle=True), or a "
                "bundled dataset's train split) as it was returned, before any transformation."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)
