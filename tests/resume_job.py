"""A training job run by tests/test_resume.py: trains with a BackupAndRestore backup, optionally hanging mid-epoch.

    python tests/resume_job.py WORKDIR [HANG_EPOCH HANG_BATCH]

With HANG_EPOCH and HANG_BATCH it writes WORKDIR/hanging before that batch
and sleeps, so the parent can SIGKILL it at a known point. Run again
without them, it resumes from WORKDIR/backup. At the end it saves the
weights and the epochs this process trained to WORKDIR/final.npz.
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class Hang:
    """Before batch `batch` of epoch `epoch`: write the marker file, then sleep (until killed)."""

    def __init__(self, marker, epoch, batch):
        self.marker, self.epoch, self.batch, self.current = Path(marker), epoch, batch, None

    def callback(self):
        import keras

        hang = self

        class _Hang(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                hang.current = epoch

            def on_train_batch_begin(self, batch, logs=None):
                if (hang.current, batch) == (hang.epoch, hang.batch):
                    hang.marker.write_text(f"{hang.epoch} {hang.batch}")
                    time.sleep(600)

        return _Hang()


def main(argv):
    work = Path(argv[0])
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_mtl as mtl

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype("float32")
    y = {"a": (x[:, 0] + x[:, 1] > 0).astype("float32"), "b": x[:, 2] * 2.0 - x[:, 3]}
    y["a"][::4] = -1  # some labels missing
    train = mtl.data.from_columns({"x": x}, y, batch_size=16, shuffle=True, seed=3)  # 13 batches
    model = mtl.models.shared_bottom(
        {"x": keras.Input((5,), name="x")},
        [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")],
        trunk=mtl.trunks.mlp([16, 8]),
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    callbacks = [keras.callbacks.BackupAndRestore(str(work / "backup"))]
    if len(argv) > 1:
        callbacks.append(Hang(work / "hanging", int(argv[1]), int(argv[2])).callback())
    history = model.fit(train, epochs=4, verbose=0, callbacks=callbacks)
    np.savez(work / "final.npz", *model.get_weights(), epochs=np.array(history.epoch))


if __name__ == "__main__":
    main(sys.argv[1:])
