"""SIGKILL during fit, backups, checkpoints, export and TensorBoard writing: nothing half-written is ever used.

Each test runs tests/crash_job.py in a child process, waits for the marker it
writes at a fixed point, SIGKILLs it, and checks what is left on disk.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import keras_mtl as mtl
from keras_mtl import callbacks, cli, saving

sys.path.insert(0, str(Path(__file__).parent))
import crash_job

JOB = Path(__file__).parent / "crash_job.py"
ROOT = Path(__file__).resolve().parent.parent


def kill_at_marker(mode: str, workdir: Path, timeout: float = 120.0) -> None:
    """Runs the job until it writes its marker, then SIGKILLs it (and always reaps it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen(
        [sys.executable, str(JOB), mode, str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.monotonic() + timeout
        while not (workdir / "marker").exists():
            if proc.poll() is not None:
                pytest.fail(f"crash job {mode!r} exited ({proc.returncode}) before its marker:\n"
                            f"{proc.stderr.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"crash job {mode!r} wrote no marker within {timeout} s")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stderr.close()
    assert not (workdir / "finished").exists()


class Restored(keras.callbacks.Callback):
    """Records the weights fit starts from (after BackupAndRestore, listed before it) and the epochs run."""

    def on_train_begin(self, logs=None):
        self.start = self.model.get_weights()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def resume(workdir: Path) -> Restored:
    x, y = crash_job.data()
    model = crash_job.build_model()
    seen = Restored()
    model.fit(x, y, batch_size=16, epochs=4, verbose=0, shuffle=False,
              callbacks=[callbacks.AtomicBackupAndRestore(str(workdir / "backup")), seen])
    return seen


def assert_weights_equal(got, npz_path):
    want = np.load(npz_path)
    assert len(got) == len(want.files)
    for i, w in enumerate(got):
        np.testing.assert_array_equal(w, want[f"arr_{i}"])


@pytest.mark.slow
def test_kill_during_fit_resumes_from_the_last_backup(tmp_path):
    kill_at_marker("fit", tmp_path)  # killed at the start of epoch 3: 2 epochs backed up
    seen = resume(tmp_path)
    assert seen.epochs == [2, 3]  # only the planned remaining epochs run
    assert_weights_equal(seen.start, tmp_path / "epoch_2.npz")  # nothing lost beyond the backup
    assert not (tmp_path / "backup").exists()  # a finished run removes its backup


@pytest.mark.slow
def test_kill_while_writing_a_backup_keeps_the_previous_one(tmp_path):
    kill_at_marker("backup", tmp_path)  # killed with the 2nd backup's weights half-written
    assert any(p.name.startswith(".") for p in (tmp_path / "backup").iterdir())  # the partial file
    seen = resume(tmp_path)
    assert seen.epochs == [1, 2, 3]
    assert_weights_equal(seen.start, tmp_path / "epoch_1.npz")


@pytest.mark.slow
def test_damaged_backup_is_reported_not_loaded(tmp_path):
    x, y = crash_job.data()
    model = crash_job.build_model()
    backup = tmp_path / "backup"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.AtomicBackupAndRestore(str(backup), delete_checkpoint=False)])
    (weights,) = backup.glob("weights-*.weights.h5")
    weights.write_bytes(weights.read_bytes()[:100])  # e.g. a partial copy of the folder
    # The checksum recorded with the backup catches it before h5py reads it.
    with pytest.raises(saving.CorruptModelFileError, match=r"Backup weights .*weights-.*\.weights\.h5 do not match the checksum"):
        crash_job.build_model().fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.AtomicBackupAndRestore(str(backup))])
    (backup / "training_metadata.json").write_text('{"epoch": 1, "wei')
    with pytest.raises(saving.CorruptModelFileError, match=r"Backup metadata .*training_metadata\.json is damaged"):
        crash_job.build_model().fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.AtomicBackupAndRestore(str(backup))])


@pytest.mark.slow
def test_kill_while_saving_a_checkpoint_leaves_the_previous_file(tmp_path):
    kill_at_marker("checkpoint", tmp_path)  # killed half-way through the epoch-2 save
    assert any(p.name.startswith(".model.keras.tmp-") for p in tmp_path.iterdir())  # the half-written save
    model = saving.load_model(tmp_path / "model.keras")  # the epoch-1 file, complete
    assert isinstance(model, mtl.MultiTaskModel)
    assert_weights_equal(model.get_weights(), tmp_path / "epoch_1.npz")


def test_truncated_keras_file_is_reported_not_loaded(tmp_path, capsys):
    path = saving.save_model(crash_job.build_model(), tmp_path / "m.keras")
    data = Path(path).read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(saving.CorruptModelFileError, match=r"cut\.keras \(\d+ bytes\) is not a complete \.keras archive"):
        saving.load_model(cut)
    assert cli.main(["export", str(cut), str(tmp_path / "exports")]) == 2
    assert "is not a complete .keras archive" in capsys.readouterr().err
    assert not (tmp_path / "exports").exists()
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # same size, one damaged byte inside a member
    (tmp_path / "flip.keras").write_bytes(bytes(flipped))
    with pytest.raises(saving.CorruptModelFileError, match="flip.keras"):
        saving.load_model(tmp_path / "flip.keras")


@pytest.mark.slow
def test_kill_during_export_leaves_no_partial_version(tmp_path):
    kill_at_marker("export", tmp_path)  # version 1 done, killed inside the export of version 2
    base = tmp_path / "exports"
    assert mtl.export.versions(base) == [1]  # TF Serving sees only the complete version
    assert [p.name for p in base.iterdir() if p.name.startswith(".staging-")]  # hidden, ignored
    path = mtl.export.export_saved_model(crash_job.build_model(), base)
    assert Path(path) == base / "2" and mtl.export.versions(base) == [1, 2]
    assert (base / "2" / "saved_model.pb").is_file()
    # The killed export's process is gone: the next export removed its staging folder.
    assert not [p.name for p in base.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_kill_during_tensorboard_logging_leaves_readable_logs(tmp_path):
    kill_at_marker("tensorboard", tmp_path)  # killed at the start of epoch 3
    logs = tmp_path / "logs"
    # keras_mtl's TensorBoard and TaskScalars flush every epoch: both finished epochs are there.
    for run, tag in (("train", "epoch_a_loss"), ("mtl", "a/loss")):
        acc = EventAccumulator(str(logs / run), size_guidance={"tensors": 0})
        acc.Reload()  # raises on a file it cannot parse
        assert [e.step for e in acc.Tensors(tag)] == [0, 1], run
    # A kill in the middle of a record: the reader keeps every complete record before it.
    def records(acc):
        return sum(len(acc.Tensors(tag)) for tag in acc.Tags()["tensors"])

    before = records(acc)
    (events,) = (logs / "mtl").glob("events.out.tfevents.*")
    events.write_bytes(events.read_bytes()[:-7])
    acc = EventAccumulator(str(logs / "mtl"), size_guidance={"tensors": 0})
    acc.Reload()
    assert records(acc) == before - 1 and 0 in [e.step for e in acc.Tensors("a/loss")]
