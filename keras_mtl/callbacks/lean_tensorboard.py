"""`LeanTensorBoard`: Keras' TensorBoard callback without the per-step cost it pays when it logs per epoch."""

from __future__ import annotations

import keras

from keras_mtl import _compat, _events as events


class LeanTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` without its per-step cost when it writes scalars per epoch.

    Same arguments, same files and tags as Keras' callback. Keras 3.15's
    `on_train_batch_end` calls `summary.scalar` for every log on every step
    even with `update_freq="epoch"`, when no writer is active and nothing
    is written, which was most of the monitoring cost of a short run
    (`benchmarks/RESULTS.md`). This skips that call when it would do nothing
    (per-epoch logging, no graph to write, no profiling). When Keras only
    writes per-epoch scalars (also no histograms or embeddings), it writes
    them with `keras_mtl._events` instead of `tf.summary`'s eager ops, the
    same records in the same files; everything else is Keras' own.

    Example:
    >>> import tempfile
    >>> LeanTensorBoard(tempfile.mkdtemp()).update_freq
    'epoch'
    """

    _scalar_summaries = None  # an events.ScalarSummaries while Keras only writes per-epoch scalars

    def _per_epoch_only(self) -> bool:
        return (
            self.update_freq == "epoch"
            # Private flags of Keras' class; if a Keras version lacks them, defer to it.
            and not _compat.tensorboard_writes_per_batch(self)
        )

    def set_model(self, model):
        super().set_model(model)  # Keras starts a fit's writers afresh here
        # Decided once per fit: writers made by one module are written through it.
        scalars_only = (
            self._per_epoch_only() and not self.write_graph and not self.histogram_freq and not self.embeddings_freq
        )
        self._scalar_summaries = events.ScalarSummaries() if scalars_only else None

    @property
    def summary(self):
        if self._scalar_summaries is not None:
            return self._scalar_summaries
        return super().summary

    def on_train_batch_end(self, batch, logs=None):
        if not (self._per_epoch_only() and not self.write_steps_per_second):
            super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self._scalar_summaries is not None:
            # On disk each epoch (0.1 ms), as TaskScalars: a run killed later keeps its finished epochs.
            for writer in self._writers.values():
                writer.flush()



__all__ = ["LeanTensorBoard"]
