"""Bytes of an export's `variables/` folder, with each weight stored once and as Keras alone stores it.

    .venv/bin/python benchmarks/bench_export_size.py

Keras' `ExportArchive` writes every weight twice (keras-team/keras#23553);
keras_mtl's exports list each weight's own `tf.Variable`
(`_compat.track_variables_once`). For two models, each export kind
(float32, int8, float16) is written both ways and its `variables/` bytes,
the stored values and the model's parameter count are printed as a
Markdown table. "Keras alone" turns the fix off for the run it measures.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from keras_mtl import _compat  # noqa: E402


def models():
    """The model of docs/serving.md's quantization table, and census-income's default shared-bottom."""
    small = mtl.models.shared_bottom(
        keras.Input((32,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Regression("r", normalize=True)],
        trunk=mtl.trunks.mlp([256, 128]),
    )
    census = mtl.data.census_income(limit=2000)
    default = mtl.models.shared_bottom(
        census.inputs, census.tasks, trunk=mtl.trunks.tabular(census.feature_space, [128, 64])
    )
    return {"32 inputs, Dense 256-128": small, "census-income, tabular 128-64": default}


def variable_bytes(path: str) -> tuple[int, int]:
    folder = Path(path) / "variables"
    size = sum(f.stat().st_size for f in folder.iterdir())
    reader = tf.train.load_checkpoint(str(folder / "variables"))
    values = sum(int(np.prod(s)) for k, s in reader.get_variable_to_shape_map().items() if k.endswith("VARIABLE_VALUE"))
    return size, values


def main() -> None:
    fix = _compat.track_variables_once
    print("| model | export | parameters | stored values: Keras alone / once | `variables/` bytes: Keras alone / once | × |")
    print("|---|---|---|---|---|---|")
    for name, model in models().items():
        for quantize in (None, "int8", "float16"):
            sizes = {}
            for once in (False, True):
                _compat.track_variables_once = fix if once else (lambda archive: None)
                try:
                    path = mtl.export.export_saved_model(model, tempfile.mkdtemp(), quantize=quantize)
                finally:
                    _compat.track_variables_once = fix
                sizes[once] = variable_bytes(path)
            (b0, v0), (b1, v1) = sizes[False], sizes[True]
            print(f"| {name} | {quantize or 'float32'} | {model.count_params():,} | {v0:,} / {v1:,} | "
                  f"{b0:,} / {b1:,} | {b1 / b0:.2f} |")


if __name__ == "__main__":
    main()
