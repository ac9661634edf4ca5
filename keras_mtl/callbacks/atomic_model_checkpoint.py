"""`AtomicModelCheckpoint`: Keras' ModelCheckpoint that never leaves a partial file at the checkpoint's path."""

from __future__ import annotations

import keras

from keras_mtl import _compat
from keras_mtl.saving import atomic_write


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` whose files are written atomically.

    Same arguments and choice of when and where to save as Keras' callback.
    Each file is written under a temporary name in the same folder and
    renamed into place (`keras_mtl.saving.atomic_write`), so a run killed
    while it saves leaves the previous checkpoint whole, never a truncated
    file at the checkpoint's path.

    Example:
    >>> import os, tempfile
    >>> AtomicModelCheckpoint(os.path.join(tempfile.mkdtemp(), "best.keras"), save_best_only=True).save_best_only
    True
    """

    def _save_model(self, epoch, batch, logs):
        # Keras' own method decides whether and where to save; only the write
        # itself is redirected to a temporary file that is renamed into place.
        model = self.model
        save, save_weights = model.save, model.save_weights

        def atomic_save(filepath, *args, **kwargs):
            return atomic_write(filepath, lambda tmp: save(tmp, *args, **kwargs))

        def atomic_save_weights(filepath, *args, **kwargs):
            return atomic_write(filepath, lambda tmp: save_weights(tmp, *args, **kwargs))

        own = {k: model.__dict__[k] for k in ("save", "save_weights") if k in model.__dict__}
        # Instance attributes, set around Keras' tracking so no layer state changes.
        _compat.set_untracked(model, "save", atomic_save)
        _compat.set_untracked(model, "save_weights", atomic_save_weights)
        try:
            super()._save_model(epoch, batch, logs)
        finally:
            for key in ("save", "save_weights"):
                if key in own:
                    _compat.set_untracked(model, key, own[key])
                else:
                    model.__dict__.pop(key, None)


__all__ = ["AtomicModelCheckpoint"]
