"""A training/export job that tests/test_crashes.py runs in a child process and SIGKILLs.

    python tests/crash_job.py MODE WORKDIR

At a deterministic point the job writes WORKDIR/marker and sleeps; the parent
waits for the marker and kills it. Modes:

- fit:        4 epochs with a per-epoch backup; stops at the start of epoch 3.
- backup:     the same, but stops half-way through writing the 2nd backup.
- checkpoint: AtomicModelCheckpoint every epoch; stops half-way through the 2nd save.
- export:     exports version 1, then stops inside the export of version 2.
- tensorboard: TensorBoard + TaskScalars; stops at the start of epoch 3.

Each epoch's weights go to WORKDIR/epoch_<n>.npz (n = epochs done), after the
backup of that epoch, so the parent knows what a resume must restore.
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

import keras_mtl as mtl
from keras_mtl import callbacks as mtl_callbacks


def build_model():
    """The tiny two-task model both the job and the parent build (same seed, same weights)."""
    keras.utils.set_random_seed(0)
    model = mtl.models.shared_bottom(
        keras.Input((4,), name="x"),
        [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")],
        trunk=mtl.trunks.mlp([8]),
    )
    model.compile(optimizer="adam")
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1]}


def stop_here(workdir: Path):
    (workdir / "marker").write_text(str(os.getpid()))
    time.sleep(600)  # the parent kills us long before this ends


class Snapshot(keras.callbacks.Callback):
    def __init__(self, workdir: Path, stop_at_epoch: int | None = None):
        super().__init__()
        self.workdir, self.stop_at_epoch = workdir, stop_at_epoch

    def on_epoch_end(self, epoch, logs=None):
        np.savez(self.workdir / f"epoch_{epoch + 1}.npz", *self.model.get_weights())

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_at_epoch:
            stop_here(self.workdir)


def stop_in_second_write(cls, method: str, workdir: Path):
    """Patches `cls.method` so that its 2nd call writes half a file and stops."""
    original = getattr(cls, method)
    calls = []

    def patched(self, filepath, *args, **kwargs):
        calls.append(filepath)
        result = original(self, filepath, *args, **kwargs)
        if len(calls) == 2:
            size = os.path.getsize(filepath)
            with open(filepath, "r+b") as f:
                f.truncate(size // 2)
            stop_here(workdir)
        return result

    setattr(cls, method, patched)


def main(mode: str, workdir: Path) -> None:
    x, y = data()
    model = build_model()
    fit = {"batch_size": 16, "epochs": 4, "verbose": 0, "shuffle": False}
    if mode in ("fit", "backup"):
        if mode == "backup":
            stop_in_second_write(keras.Model, "save_weights", workdir)
        backup = mtl_callbacks.AtomicBackupAndRestore(str(workdir / "backup"))
        model.fit(x, y, callbacks=[backup, Snapshot(workdir, stop_at_epoch=2)], **fit)
    elif mode == "checkpoint":
        stop_in_second_write(keras.Model, "save", workdir)
        checkpoint = mtl_callbacks.AtomicModelCheckpoint(str(workdir / "model.keras"))
        model.fit(x, y, callbacks=[checkpoint, Snapshot(workdir)], **fit)
    elif mode == "export":
        mtl.export.export_saved_model(model, workdir / "exports")
        from keras_mtl.export import metadata

        def stop(*args, **kwargs):
            stop_here(workdir)

        metadata.write_metadata = stop
        mtl.export.export_saved_model(model, workdir / "exports")
    elif mode == "tensorboard":
        logs = str(workdir / "logs")
        callbacks = [mtl_callbacks.LeanTensorBoard(logs), mtl_callbacks.TaskScalars(logs), Snapshot(workdir, 2)]
        model.fit(x, y, callbacks=callbacks, **fit)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    (workdir / "finished").write_text("the job was not killed")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
