"""`AtomicBackupAndRestore`: Keras' BackupAndRestore whose backups survive the process being killed while it writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

from keras_mtl import _compat
from keras_mtl.saving import CorruptModelFileError, atomic_write, sha256


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that survives being killed while it writes a backup.

    Keras overwrites `latest.weights.h5` and then `training_metadata.json`
    in place: a kill during either leaves a truncated file, or new weights
    beside the old epoch number. Here each backup writes a new weights file
    first, and then commits it by atomically replacing the metadata file
    that names it (with the epoch and the file's SHA-256). A kill at any
    point leaves the previous backup intact and loadable; a damaged backup
    (truncated, or changed in place) is reported, not loaded.

    Args:
        backup_dir: folder of the backup (used by this run only).
        save_freq: `"epoch"` or a number of batches, as in Keras.
        delete_checkpoint: remove the backup when training ends normally.

    Example:
    >>> import tempfile
    >>> AtomicBackupAndRestore(tempfile.mkdtemp(), save_freq=10).save_freq
    10
    """

    def __init__(self, backup_dir: str, save_freq: str | int = "epoch", delete_checkpoint: bool = True):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        self._saves = 0

    @property
    def metadata_path(self) -> Path:
        return Path(_compat.backup_metadata_path(self))

    def _load_model(self):
        if not self.metadata_path.exists():
            return  # no committed backup yet: a fresh start
        if not self.model.built:
            raise ValueError("AtomicBackupAndRestore needs a built model; call it on a batch before fit().")
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
        if "sha256" in meta and sha256(weights) != meta["sha256"]:
            # HDF5 has no checksum of its own: damage that keeps the file's size would load.
            raise CorruptModelFileError(
                f"Backup weights {weights} do not match the checksum recorded when they were "
                f"written: the file is damaged. Delete {self.backup_dir} to start the run from scratch."
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
        _compat.set_resume_epoch(self.model, epoch)

    def _save_model(self):
        backup = Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        self._saves += 1
        # A new name each time: the committed file is never written over.
        name = f"weights-{os.getpid()}-{self._saves}.weights.h5"
        atomic_write(backup / name, lambda tmp: self.model.save_weights(tmp, overwrite=True))
        epoch, batch = _compat.backup_position(self)
        meta = {"epoch": epoch, "batch": batch, "weights": name, "sha256": sha256(backup / name)}
        atomic_write(self.metadata_path, lambda tmp: Path(tmp).write_text(json.dumps(meta)))
        for old in backup.glob("weights-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)


__all__ = ["AtomicBackupAndRestore"]
