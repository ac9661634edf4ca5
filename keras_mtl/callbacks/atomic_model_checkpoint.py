"""`AtomicModelCheckpoint`: Keras' ModelCheckpoint that never leaves a partial file at the checkpoint's path."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import keras

from keras_mtl import _compat
from keras_mtl.saving import atomic_write, sha256


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` whose files are written atomically.

    Same arguments and choice of when and where to save as Keras' callback.
    Each file is written under a temporary name in the same folder and
    renamed into place (`keras_mtl.saving.atomic_write`), so a run killed
    while it saves leaves the previous checkpoint whole, never a truncated
    file at the checkpoint's path.

    With `save_best_only`, the best value so far is kept beside the file
    (`<filepath>.state.json`, with the file's SHA-256). A resumed run (one
    whose first epoch is not 0, e.g. restored by `AtomicBackupAndRestore`)
    starts from that best value, so its first epoch replaces the checkpoint
    only if it is better, as in the run that was never interrupted.

    Example:
    >>> import os, tempfile
    >>> AtomicModelCheckpoint(os.path.join(tempfile.mkdtemp(), "best.keras"), save_best_only=True).save_best_only
    True
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        if self.__dict__.pop("_first_epoch", False) and epoch > 0 and self.save_best_only:
            self._restore_best()

    @property
    def state_path(self) -> Path:
        """Where the best value so far is kept (`save_best_only` only)."""
        return Path(f"{self.filepath}.state.json")

    def _restore_best(self) -> None:
        state_path, checkpoint = self.state_path, Path(self.filepath)
        if not (state_path.is_file() and checkpoint.is_file()):
            return
        try:
            state = json.loads(state_path.read_text())
            best, monitor, digest = float(state["best"]), state["monitor"], state["sha256"]
        except (ValueError, KeyError, TypeError):
            warnings.warn(f"{state_path} is damaged; the resumed run's first epoch may replace {checkpoint}.")
            return
        if monitor != self.monitor or digest != sha256(checkpoint):
            # A checkpoint of another metric, or a file changed since: not this run's best.
            return
        self.best = best

    def _save_model(self, epoch, batch, logs):
        # Keras' own method decides whether and where to save; only the write
        # itself is redirected to a temporary file that is renamed into place.
        model = self.model
        save, save_weights = model.save, model.save_weights

        saved = []

        def atomic_save(filepath, *args, **kwargs):
            saved.append(filepath)
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
        if saved and self.save_best_only and self.best is not None:
            state = {"monitor": self.monitor, "best": float(self.best), "epoch": epoch, "sha256": sha256(saved[-1])}
            atomic_write(self.state_path, lambda tmp: Path(tmp).write_text(json.dumps(state)))


__all__ = ["AtomicModelCheckpoint"]
