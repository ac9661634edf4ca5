"""Exports one small model, whose weights are filled with `fill`, into a base folder (for the concurrency test).

    python tests/export_job.py BASE FILL
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl as mtl  # noqa: E402


def build(fill: float):
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Regression("y", normalize=False)])
    model.set_weights([np.full(w.shape, fill, w.dtype) for w in model.get_weights()])
    return model


if __name__ == "__main__":
    base, fill = sys.argv[1], float(sys.argv[2])
    print(mtl.export.export_saved_model(build(fill), base))
