"""Preemption: a run SIGKILLed mid-epoch resumes from its BackupAndRestore backup
and ends with exactly the weights of a run that was never interrupted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

JOB = Path(__file__).with_name("resume_job.py")


def start(work, *hang):
    work.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(JOB), str(work), *map(str, hang)],
        env={**os.environ, "TF_CONFIG": ""}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(proc, timeout=120):
    out = proc.communicate(timeout=timeout)[0]
    assert proc.returncode == 0, out[-3000:]


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    reference = start(tmp_path / "reference")
    # Killed before batch 5 of epoch 2 (0-based), i.e. after the epoch-1 backup,
    # in the middle of the third epoch.
    victim = start(tmp_path / "resumed", 2, 5)
    procs = [reference, victim]
    try:
        marker = tmp_path / "resumed" / "hanging"
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert victim.poll() is None, victim.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the job never reached the batch to be killed at"
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL
        assert not (tmp_path / "resumed" / "final.npz").exists()
        assert (tmp_path / "resumed" / "backup").is_dir()

        resumed = start(tmp_path / "resumed")
        procs.append(resumed)
        finish(resumed)
        finish(reference)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    ref = np.load(tmp_path / "reference" / "final.npz")
    out = np.load(tmp_path / "resumed" / "final.npz")
    assert ref["epochs"].tolist() == [0, 1, 2, 3]
    assert out["epochs"].tolist() == [2, 3]  # resumed from the end of epoch 1, not from scratch
    keys = [k for k in ref.files if k.startswith("arr_")]
    assert len(keys) >= 8
    for k in keys:
        np.testing.assert_array_equal(out[k], ref[k])
