"""`keras-mtl train` in a child process that SIGKILLs itself at a chosen point; tests/test_cli_kills.py runs it.

    python tests/cli_kill_job.py WORKDIR CONFIG [POINT [EPOCH [BATCH]]]

The real CLI (`keras_mtl.cli.main(["train", CONFIG])`) runs in WORKDIR. With
POINT it kills itself (SIGKILL: no cleanup, no finally) at

    batch       before batch BATCH of epoch EPOCH (0-based)
    checkpoint  right after epoch EPOCH's best.keras is written, before its backup
    backup      right after epoch EPOCH's backup is written
    export      when training and the test are done, before the export starts
    verify      after the export is renamed into place, before it is verified

and leaves WORKDIR/killed_at naming the point, so the parent knows it was reached.
"""

import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def die(point: str) -> None:
    Path("killed_at").write_text(point)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, epoch: int, batch: int) -> None:
    import keras

    from keras_mtl import callbacks, training

    if point == "batch":
        class Kill(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                self.epoch = e

            def on_train_batch_begin(self, b, logs=None):
                if (self.epoch, b) == (epoch, batch):
                    die(f"batch {epoch} {batch}")

        monitoring = training.monitoring
        training.monitoring = lambda *a, **k: monitoring(*a, **k) + [Kill()]
    elif point in ("checkpoint", "backup"):
        cls = callbacks.AtomicModelCheckpoint if point == "checkpoint" else callbacks.AtomicBackupAndRestore
        on_epoch_end = cls.on_epoch_end

        def after(self, e, logs=None):
            on_epoch_end(self, e, logs)
            if e == epoch:
                die(f"{point} {epoch}")

        cls.on_epoch_end = after
    elif point in ("export", "verify"):
        name = "export_saved_model" if point == "export" else "verify"
        original = getattr(training.export_lib, name)

        def before(*args, **kwargs):
            die(point)
            return original(*args, **kwargs)

        # `training` reads both through its `export_lib` module alias.
        setattr(training.export_lib, name, before)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def main(argv):
    work, config = Path(argv[0]), str(Path(argv[1]).resolve())
    os.chdir(work)
    if len(argv) > 2:
        arm(argv[2], *(int(v) for v in (argv[3:] + ["0", "0"])[:2]))
    import tensorflow as tf

    from keras_mtl import cli

    # Bit-identical reruns (the test compares weights exactly).
    tf.config.experimental.enable_op_determinism()
    return cli.main(["train", config])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
