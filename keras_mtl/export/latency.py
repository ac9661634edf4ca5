"""How long one call of an export's `serving_default` takes, in this process."""

from __future__ import annotations

import os
import statistics
import time
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from keras_mtl.export import samples as samples_lib


def serving_latency(
    export_dir: str | os.PathLike,
    features: Mapping[str, np.ndarray],
    batch_sizes: Sequence[int] = (1, 256),
    *,
    calls: int = 100,
    warmup: int = 10,
) -> dict[int, float]:
    """`{batch size: median milliseconds}` of one `serving_default` call of the export at `export_dir`.

    The SavedModel is loaded with `tf.saved_model.load` and called in this
    process (no server, no network): what the graph costs, as TF Serving's
    session runs it. `features` are rows as a client sends them (e.g.
    `MultiTaskData.sample()`), repeated to fill a batch larger than them.
    `warmup` calls precede the `calls` timed ones at each batch size.

    Example:
    >>> import keras, tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    >>> path = mtl.export.export_saved_model(model, tempfile.mkdtemp())
    >>> sorted(serving_latency(path, {"x": np.ones((2, 3), "float32")}, (1, 4), calls=5))
    [1, 4]
    """
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    missing = sorted(set(specs) - set(features))
    if missing:
        raise ValueError(f"serving_latency: no rows for input(s) {missing} of {export_dir}; it takes {sorted(specs)}.")
    # Cast and shaped as `request` and `verify` send rows (a JSON list column becomes a matrix).
    features = samples_lib.serving_inputs(specs, {name: features[name] for name in specs})
    rows = len(next(iter(features.values())))
    if rows == 0:
        raise ValueError("serving_latency: the features have no rows.")
    result = {}
    for batch in batch_sizes:
        take = np.arange(int(batch)) % rows
        inputs = {name: tf.constant(features[name][take], dtype=spec.dtype) for name, spec in specs.items()}
        for _ in range(warmup):
            serve(**inputs)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            serve(**inputs)
            times.append(time.perf_counter() - start)
        result[int(batch)] = statistics.median(times) * 1e3
    return result


__all__ = ["serving_latency"]
