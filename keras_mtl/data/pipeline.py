"""tf.data pipelines over in-memory columns: batched by index, gathered per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
    from keras_mtl.tasks import Task


def pipeline_options() -> tf.data.Options:
    """The options keras_mtl sets on its pipelines.

    Autotuning is off: on 2-core machines TensorFlow's autotuner was measured
    to stall many epochs with no CPU in use, which made the throughput of
    shared-bottom on census-income both lower and far more variable.
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
    group: str | None = None,
) -> tf.data.Dataset:
    """Batches `(features, labels)` column dicts into a dataset of dicts of tensors.

    Rows are shuffled as a permutation of indices each epoch and each batch is
    one vectorised gather, which is far cheaper than slicing and re-batching
    every row of every column. With `shuffle=True`, epoch `e`'s order is a
    pure function of `(seed, e)`: the same on one device, on every replica
    and worker of a distribution strategy, and after a resume (see
    `keras_mtl.callbacks.SetEpoch`, which `MultiTaskModel.fit` adds by itself). With `tasks`, the columns are checked against
    them first (`keras_mtl.data.checks.check_columns`), so a bad label fails
    here, naming the task, value and row, rather than mid-training. With
    `group` (a label key of group ids, a Ranking task's), shuffling permutes
    the groups and keeps each group's rows together, so a batch holds whole
    groups (but for the group cut at a batch's end).

    Columns with one value per row (features and labels alike) are stacked
    by dtype into one matrix when the dataset is built, so a batch of them
    is one gather per dtype rather than one per column (raw census-income's
    41 columns take 2 gathers). That copies those columns once more, on top of the caller's arrays:
    fine for the bundled datasets, which fit in memory several times over.
    Other columns are gathered on their own, with no extra copy.

    Keras' `fit` creates a new iterator at the start of every epoch (and one
    more at its end) and waits for its first batch, and every function in a
    tf.data pipeline is instantiated and graph-optimised again per iterator,
    a few ms each on 2 cores. So the pipeline has two functions (one draws a
    pass's order, one gathers a batch and builds the `(features, labels)`
    pair) and takes a pass's index batches from a sliced tensor rather than
    from a function: a new epoch's first batch arrives in about half the
    time the five functions this replaced took (`benchmarks/bench_pipeline.py`).
    What is left per batch is mostly the copy of the rows themselves, which
    a `cache()`d pipeline that replays one order never pays. Gathering a
    whole pass at once and slicing it was no cheaper per row, made each
    epoch wait longer for its first batch, and held a second copy of every
    column.

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
    gather = _row_gatherer(columns)
    epoch = None
    if shuffle:
        epoch = _epoch_variable()
        members = None
        if group is not None:
            if labels is None or group not in labels:
                raise ValueError(f"from_columns: group {group!r} is not a label key; labels are {sorted(labels or {})}.")
            members = _group_members(np.asarray(labels[group]).reshape(n, -1)[:, 0])
        batches = _epoch_permutations(n, batch_size, seed, epoch, members)
    else:
        batches = tf.data.Dataset.from_tensor_slices(_cut(tf.range(n, dtype=tf.int64), batch_size))

    labelled = labels is not None  # not `labels`: the dataset must not keep the caller's arrays alive

    def batch(rows, size):
        out = gather(rows[:size])
        return (out["features"], out["labels"]) if labelled else out["features"]

    ds = batches.map(batch).prefetch(2).with_options(pipeline_options())
    if epoch is not None:
        setattr(ds, _EPOCH_ATTR, epoch)
    if tasks is not None:
        from keras_mtl.data.batch_checks import mark_checked

        mark_checked(ds, tasks)
    return ds


def _row_gatherer(columns: Mapping[str, Mapping[str, np.ndarray]]):
    """A function from a vector of row indices to those rows of every column, nested like `columns`.

    Columns with one value per row are stacked, by dtype, into one matrix
    with a column each: one gather fetches a batch of them all, and
    `unstack` hands back the columns. Wider columns are gathered on their
    own: packing them would add a copy of every batch (taking them back
    apart), for a saving of one op.
    """
    tensors = {
        (part, name): tf.convert_to_tensor(col) for part, cols in columns.items() for name, col in cols.items()
    }
    groups: dict[object, list] = {}
    for key, t in tensors.items():
        groups.setdefault(t.dtype if t.shape[1:].num_elements() == 1 else key, []).append(key)
    stacked = [
        (keys, tf.stack([tf.reshape(tensors[k], [-1]) for k in keys], axis=1) if len(keys) > 1 else tensors[keys[0]])
        for keys in groups.values()
    ]
    trailing = {key: t.shape[1:].as_list() for key, t in tensors.items()}
    names = {part: list(cols) for part, cols in columns.items()}  # not the arrays (see from_columns)

    def gather(indices):
        out = {}
        for keys, t in stacked:
            if len(keys) == 1:
                out[keys[0]] = tf.gather(t, indices)
                continue
            count = tf.size(indices)
            for key, values in zip(keys, tf.unstack(tf.gather(t, indices), axis=1)):
                out[key] = tf.reshape(values, [count, *trailing[key]]) if trailing[key] else values
        # The callers' key order, not the groups'.
        return {part: {name: out[(part, name)] for name in part_names} for part, part_names in names.items()}

    return gather


def _cut(order: tf.Tensor, batch_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """`order` as `(rows, sizes)`: rows of `batch_size` indices (the last padded) and each row's length."""
    n = int(order.shape[0])
    num_batches = -(-n // batch_size)
    rows = tf.reshape(tf.pad(order, [[0, num_batches * batch_size - n]]), [num_batches, batch_size])
    sizes = np.minimum(batch_size, n - np.arange(num_batches) * batch_size)
    return rows, tf.constant(sizes, tf.int64)


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
    from keras_mtl import _compat

    return _compat.host_variable(0, tf.int64, "keras_mtl_shuffle_epoch")


def _group_members(ids: np.ndarray) -> tf.RaggedTensor:
    """Row indices by group: one ragged row per distinct id, the rows in their original order.

    Example:
    >>> _group_members(np.array([7, 3, 7, 3, 5])).to_list()
    [[1, 3], [4], [0, 2]]
    """
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    rows = np.argsort(inverse.reshape(-1), kind="stable")
    return tf.RaggedTensor.from_row_lengths(tf.constant(rows, tf.int64), tf.constant(counts, tf.int64))


def _epoch_permutations(
    n: int, batch_size: int, seed: int, epoch: tf.Variable, members: tf.RaggedTensor | None = None
) -> tf.data.Dataset:
    """Index batches of one pass, as `_cut` gives them: a permutation of range(n) keyed by (seed, epoch),
    of whole groups (`members`: row indices per group) when given.

    The epoch is read when a pass starts and advanced by one, so without
    `SetEpoch` every pass still gets a new (deterministic) order.
    """
    num_batches = -(-n // batch_size)
    seed = tf.constant(seed, tf.int64)

    def one_pass(_):
        key = tf.stack([seed, epoch.assign_add(1) - 1])
        if members is None:
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)
        else:
            groups = tf.random.experimental.stateless_shuffle(tf.range(members.nrows(), dtype=tf.int64), seed=key)
            order = tf.ensure_shape(tf.gather(members, groups).flat_values, [n])
        return tf.data.Dataset.from_tensor_slices(_cut(order, batch_size))

    # The pass's dataset slices a tensor: it has no function of its own to
    # instantiate (see from_columns). flat_map hides the length; the pass
    # has exactly num_batches batches.
    passes = tf.data.Dataset.range(1).flat_map(one_pass)
    return passes.apply(tf.data.experimental.assert_cardinality(num_batches))


def shuffle_epoch(dataset) -> tf.Variable | None:
    """The epoch variable of a shuffled keras_mtl dataset (`from_columns(shuffle=True)`), else None.

    Example:
    >>> shuffle_epoch(from_columns({"x": np.arange(4.0)}, shuffle=True)).dtype
    tf.int64
    >>> shuffle_epoch(from_columns({"x": np.arange(4.0)})) is None
    True
    """
    return getattr(dataset, _EPOCH_ATTR, None)
