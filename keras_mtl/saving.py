"""Crash-safe model files: atomic `.keras` saves, checked loads, and checkpoint callbacks built on them.

A process killed while Keras writes `model.keras` or a BackupAndRestore
backup leaves a truncated file at the final path, and the next run fails deep
inside zipfile or h5py. Here every file is written under a temporary name in
the same folder, flushed to disk and renamed into place (`os.replace` is
atomic on POSIX), so a reader sees the old file or the new one, never half of
one. A file that is damaged anyway (a partial copy, a full disk) is reported
as `CorruptModelFileError` naming the file, never loaded.

| function / class          | replaces                          |
|---------------------------|-----------------------------------|
| `save_model(model, path)` | `model.save(path)`                |
| `load_model(path)`        | `keras.saving.load_model(path)`   |
| `ModelCheckpoint`         | `keras.callbacks.ModelCheckpoint` |
| `BackupAndRestore`        | `keras.callbacks.BackupAndRestore`|
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import keras


class CorruptModelFileError(ValueError):
    """A model, checkpoint or backup file is incomplete or damaged, so it was not loaded."""


def _temporary_sibling(path: Path) -> Path:
    # Same folder, so the final rename never crosses a filesystem; a dot name
    # that no reader globs for while it is being written.
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, write) -> str:
    """Calls `write(temporary_path)`, then renames the result to `path` in one step.

    Example:
    >>> import tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "note.txt")
    >>> _ = atomic_write(target, lambda tmp: Path(tmp).write_text("hello"))
    >>> open(target).read()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    # Keras picks the format from the extension: keep it on the temporary name.
    tmp = tmp.with_name(tmp.name + "".join(path.suffixes[-2:]))
    try:
        write(str(tmp))
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return str(path)


def save_model(model: keras.Model, path: str | os.PathLike) -> str:
    """`model.save(path)` that never leaves a partial `.keras` file at `path`.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Binary("a")])
    >>> path = save_model(model, os.path.join(tempfile.mkdtemp(), "m.keras"))
    >>> load_model(path).output_names
    ['a']
    """
    return atomic_write(path, lambda tmp: model.save(tmp))


def check_model_file(path: str | os.PathLike) -> None:
    """Raises `CorruptModelFileError` (or `FileNotFoundError`) unless `path` is a complete `.keras` archive.

    Checks the zip directory (written last, so a truncated file has none) and
    the CRC of every member.

    Example:
    >>> import tempfile
    >>> bad = os.path.join(tempfile.mkdtemp(), "m.keras")
    >>> _ = open(bad, "wb").write(b"PK\\x03\\x04 half a file")
    >>> check_model_file(bad)
    Traceback (most recent call last):
    ...
    keras_mtl.saving.CorruptModelFileError: ... is not a complete .keras archive ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    size = path.stat().st_size
    hint = (
        "it may have been cut short by a crash or a partial copy; use an intact copy "
        "(or the previous checkpoint) instead."
    )
    try:
        with zipfile.ZipFile(path) as z:
            broken = z.testzip()
            names = set(z.namelist())
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CorruptModelFileError(
            f"{path} ({size} bytes) is not a complete .keras archive ({e}); {hint}"
        ) from None
    if broken is not None:
        raise CorruptModelFileError(f"{path}: member {broken!r} is damaged (CRC mismatch); {hint}")
    if "config.json" not in names:
        raise CorruptModelFileError(f"{path} has no config.json, so it is not a Keras model file; {hint}")


def load_model(path: str | os.PathLike, **kwargs: Any) -> keras.Model:
    """`keras.saving.load_model` after checking the file is complete; safe mode stays on.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Regression("y")])
    >>> path = save_model(model, os.path.join(tempfile.mkdtemp(), "m.keras"))
    >>> type(load_model(path)).__name__
    'MultiTaskModel'
    """
    if kwargs.get("safe_mode") is False:
        raise ValueError(
            "keras_mtl models load with safe_mode=True: they hold no Lambda layers or "
            "pickled code. A file that needs safe_mode=False is not a keras_mtl model."
        )
    check_model_file(path)
    return keras.saving.load_model(str(path), **kwargs)


class ModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` whose files are written atomically.

    Example:
    >>> import tempfile
    >>> ModelCheckpoint(os.path.join(tempfile.mkdtemp(), "best.keras"), save_best_only=True).save_best_only
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
        object.__setattr__(model, "save", atomic_save)
        object.__setattr__(model, "save_weights", atomic_save_weights)
        try:
            super()._save_model(epoch, batch, logs)
        finally:
            for key in ("save", "save_weights"):
                if key in own:
                    object.__setattr__(model, key, own[key])
                else:
                    model.__dict__.pop(key, None)


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that survives being killed while it writes a backup.

    Keras overwrites `latest.weights.h5` and then `training_metadata.json`
    in place: a kill during either leaves a truncated file, or new weights
    beside the old epoch number. Here each backup writes a new weights file
    first, and then commits it by atomically replacing the metadata file
    that names it (with the epoch). A kill at any point leaves the previous
    backup intact and loadable; a damaged backup is reported, not loaded.

    Args:
        backup_dir: folder of the backup (used by this run only).
        save_freq: `"epoch"` or a number of batches, as in Keras.
        delete_checkpoint: remove the backup when training ends normally.

    Example:
    >>> import tempfile
    >>> BackupAndRestore(tempfile.mkdtemp(), save_freq=10).save_freq
    10
    """

    def __init__(self, backup_dir: str, save_freq: str | int = "epoch", delete_checkpoint: bool = True):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        self._saves = 0

    @property
    def metadata_path(self) -> Path:
        return Path(self._training_metadata_path)

    def _load_model(self):
        if not self.metadata_path.exists():
            return  # no committed backup yet: a fresh start
        if not self.model.built:
            raise ValueError("BackupAndRestore needs a built model; call it on a batch before fit().")
        try:
            meta = json.loads(self.metadata_path.read_text())
            weights = Path(self.backup_dir) / meta["weights"]
            epoch = int(meta["epoch"])
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptModelFileError(
                f"Backup metadata {self.metadata_path} is damaged ({e}); delete {self.backup_dir} "
                "to start the run from scratch."
            ) from None
        if not weights.is_file():
            raise CorruptModelFileError(
                f"Backup {self.metadata_path} names {weights.name}, which is missing from "
                f"{self.backup_dir}; delete that folder to start the run from scratch."
            )
        if self.model.optimizer is not None and not self.model.optimizer.built:
            # The optimizer's slots must exist for their backed-up values to load.
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(str(weights))
        except (OSError, ValueError) as e:
            raise CorruptModelFileError(
                f"Backup weights {weights} could not be read ({str(e).splitlines()[0]}); delete "
                f"{self.backup_dir} to start the run from scratch."
            ) from None
        self.model._initial_epoch = epoch

    def _save_model(self):
        backup = Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        self._saves += 1
        # A new name each time: the committed file is never written over.
        name = f"weights-{os.getpid()}-{self._saves}.weights.h5"
        atomic_write(backup / name, lambda tmp: self.model.save_weights(tmp, overwrite=True))
        meta = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        atomic_write(self.metadata_path, lambda tmp: Path(tmp).write_text(json.dumps(meta)))
        for old in backup.glob("weights-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)


__all__ = [
    "BackupAndRestore",
    "CorruptModelFileError",
    "ModelCheckpoint",
    "atomic_write",
    "check_model_file",
    "load_model",
    "save_model",
]
