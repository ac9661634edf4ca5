"""`SetEpoch`: keeps a shuffled keras_mtl dataset's epoch equal to the epoch `fit` trains."""

from __future__ import annotations

import keras

from keras_mtl.data.pipeline import shuffle_epoch


class SetEpoch(keras.callbacks.Callback):
    """Before each epoch, sets a shuffled dataset's epoch to Keras' epoch index.

    A shuffled `from_columns` dataset (and so the `train` split of every
    bundled dataset) orders epoch `e` by a permutation that depends only on
    `(seed, e)`. This callback keeps `e` equal to the epoch `fit` is
    training, so the order is the same on one device, under MirroredStrategy
    and on every worker of MultiWorkerMirroredStrategy, and after
    a backup callback (`AtomicBackupAndRestore`, Keras' `BackupAndRestore`)
    resumes at epoch `e`. `MultiTaskModel.fit` adds it by
    itself when its `x` is such a dataset; pass it yourself to a plain
    `keras.Model`, or when you transform the dataset before `fit` (the
    transformed dataset no longer carries the epoch, so hand over the one
    that does). `fit` numbers epochs from `initial_epoch`: a second
    `fit(epochs=E)` replays the first one's orders unless it passes
    `initial_epoch`.

    Without it the dataset still reshuffles on every pass, keyed by the
    number of passes read so far.

    Example:
    >>> import numpy as np
    >>> from keras_mtl.data import from_columns
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


__all__ = ["SetEpoch"]
