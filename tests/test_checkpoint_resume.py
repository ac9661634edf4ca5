"""A resumed run keeps the best checkpoint of the epochs before the interruption (issue 24, case 1)."""

import json

import keras
import numpy as np
import pytest

import keras_mtl as mtl
from keras_mtl import saving
from keras_mtl.callbacks import AtomicBackupAndRestore, AtomicModelCheckpoint

VAL_LOSSES = [0.5, 0.3, 0.2, 0.25]  # epoch 3 (index 2) is the best; epoch 4 is worse


class ScriptedValLoss(keras.callbacks.Callback):
    """Sets val_loss to a scripted value before the checkpoint reads it, and stops the run at `stop_at`."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.stop_at = stop_at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_at:
            raise KeyboardInterrupt  # killed after the previous epoch's backup

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = VAL_LOSSES[epoch]


def fit(tmp_path, stop_at=None):
    keras.utils.set_random_seed(0)
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    model.compile(optimizer="adam")
    x, y = np.random.default_rng(0).normal(size=(64, 3)).astype("float32"), np.tile([0.0, 1.0], 32)
    callbacks = [
        ScriptedValLoss(stop_at),
        AtomicModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True),
        AtomicBackupAndRestore(str(tmp_path / "backup")),
    ]
    model(x[:1])
    model.fit(x, {"a": y}, epochs=len(VAL_LOSSES), batch_size=16, callbacks=callbacks, verbose=0)


def test_resume_does_not_replace_a_better_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path, stop_at=3)
    best = (tmp_path / "best.keras").read_bytes()
    state = json.loads((tmp_path / "best.keras.state.json").read_text())
    assert (state["best"], state["epoch"], state["monitor"]) == (0.2, 2, "val_loss")
    fit(tmp_path)  # resumes at epoch 4 (val_loss 0.25 > 0.2)
    assert (tmp_path / "best.keras").read_bytes() == best


def test_a_checkpoint_changed_since_is_not_trusted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path, stop_at=3)
    other = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    saving.save_model(other, tmp_path / "best.keras")  # not the file the state describes
    changed = (tmp_path / "best.keras").read_bytes()
    fit(tmp_path)
    assert (tmp_path / "best.keras").read_bytes() != changed  # the resumed run's best replaced it


def test_backup_weights_damaged_in_place_are_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path, stop_at=3)
    meta = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())
    weights = tmp_path / "backup" / meta["weights"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # same size, some bytes zeroed
    weights.write_bytes(bytes(data))
    with pytest.raises(saving.CorruptModelFileError, match="do not match the checksum"):
        fit(tmp_path)
