"""Checks that an export loads the way TF Serving loads it and answers like the model."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Mapping

import numpy as np
import tensorflow as tf

from keras_mtl.export import signatures


class VerificationError(AssertionError):
    """The export did not load, or its answers differ from the model's."""


def _as_numpy(value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind == "U":
        # Fixed-width bytes survive .npz without pickling.
        array = np.array([s.encode() if isinstance(s, str) else s for s in array.ravel()]).reshape(
            array.shape
        )
    return array


def run_in_fresh_process(
    path: str, samples: Mapping[str, np.ndarray], signature: str = "serving_default", timeout: float = 300
) -> dict[str, np.ndarray]:
    """Runs `signature` of the export at `path` on `samples` in a new Python process (TF1 graph mode)."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inputs, **{k: _as_numpy(v) for k, v in samples.items()})
        proc = subprocess.run(
            [sys.executable, "-m", "keras_mtl.export.tf1_load", str(path), inputs, outputs, signature],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise VerificationError(
                f"The export at {path} failed to load or run in TF1 graph mode (as TF Serving "
                f"loads it):\n{proc.stderr[-4000:]}"
            )
        with np.load(outputs, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}


def verify(path: str, samples: Mapping[str, np.ndarray], model=None, *, atol: float = 1e-5) -> dict:
    """Loads the export at `path` like TF Serving, runs it on `samples`, compares with `model`.

    The export is loaded in a fresh process with
    `tf.compat.v1.saved_model.loader.load` and run with `Session.run` on the
    signature's tensor names, which is the path TF Serving's C++ loader takes
    (lookup tables and all). With `model`, every task's output must equal the
    Keras model's within `atol`.

    Returns:
        A report: `{"path", "signature", "outputs": {task: shape}, "max_abs_diff"}`.

    Example:
    >>> import tempfile, keras, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    >>> path = mtl.export.export_saved_model(model, tempfile.mkdtemp())
    >>> verify(path, {"x": np.ones((2, 3), "float32")}, model)["max_abs_diff"] < 1e-5
    True
    """
    served = run_in_fresh_process(path, samples)
    report = {
        "path": str(path),
        "signature": "serving_default",
        "outputs": {k: list(v.shape) for k, v in served.items()},
        "max_abs_diff": None,
    }
    if model is not None:
        specs = signatures.input_specs(model)
        features = {k: tf.constant(_as_numpy(v), dtype=specs[k].dtype) for k, v in samples.items()}
        expected = {k: v.numpy() for k, v in signatures.serve(model, features).items()}
        if sorted(expected) != sorted(served):
            raise VerificationError(
                f"The export returns {sorted(served)} but the model has outputs {sorted(expected)}."
            )
        diffs = {}
        for name, want in expected.items():
            got = served[name]
            if got.shape != want.shape:
                raise VerificationError(
                    f"Task {name!r}: the export returns shape {got.shape}, the model {want.shape}."
                )
            diffs[name] = float(np.max(np.abs(got - want))) if want.size else 0.0
        report["max_abs_diff"] = max(diffs.values())
        bad = {k: d for k, d in diffs.items() if not d <= atol}
        if bad:
            raise VerificationError(
                f"The export's answers differ from the model's by more than {atol}: {bad}."
            )
    return report
