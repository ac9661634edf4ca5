"""`assets.extra/keras_mtl.json`: the export's contract, written beside the SavedModel.

It lists the tasks, the exact input names, dtypes and shapes, the tf.Example
feature spec, every signature as `saved_model.pb` holds it, the ops a server
must link beyond core TensorFlow, and the warmup requests. TF Serving ignores
`assets.extra/`; clients, `verify` and `model_config` read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import keras
import tensorflow as tf

from keras_mtl.export import saved_model_pb, signatures

METADATA = os.path.join("assets.extra", "keras_mtl.json")
FORMAT = "keras_mtl/2"


def build_metadata(
    model: keras.Model,
    export_dir: str | os.PathLike,
    version: int,
    ops: Mapping[str, list],
    warmup: Mapping | None,
    quantization: Mapping | None = None,
) -> dict:
    """The metadata of the export of `model` written at `export_dir` (its signatures read from the file).

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Multiclass("k", 3)])
    >>> path = mtl.export.export_saved_model(model, tempfile.mkdtemp())
    >>> meta = read_metadata(path)
    >>> list(meta["signatures"]), meta["signatures"]["predict_k"]["outputs"]["k_class_id"]
    (['serving_default', 'predict_k', 'serve_tf_example'], {'dtype': 'int64', 'shape': [None]})
    """
    table = saved_model_pb.signature_table(saved_model_pb.read_saved_model(export_dir))
    return {
        "format": FORMAT,
        "model": model.name,
        "version": version,
        "tasks": [
            {"name": t.name, "type": type(t).__name__, "units": t.units}
            for t in getattr(model, "tasks", ())
        ],
        "inputs": {
            name: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
            for name, spec in signatures.input_specs(model).items()
        },
        "tf_example_features": {
            name: {
                "dtype": feature.dtype.name,
                "shape": list(feature.shape),
                "kind": type(feature).__name__,
            }
            for name, feature in signatures.example_features(model).items()
        },
        # In the order of signature_names: serving_default first.
        "signatures": {name: table[name] for name in signatures.signature_names(model)},
        "ops": {kind: list(ops.get(kind, [])) for kind in ("tensorflow_text", "allowed")},
        "warmup": dict(warmup) if warmup else None,
        # None, or what `export_saved_model(quantize=...)` compressed (`QuantizedCopy.summary()`).
        "quantization": dict(quantization) if quantization else None,
    }


def write_metadata(export_dir: str | os.PathLike, meta: Mapping) -> str:
    """Writes `meta` as the export's `assets.extra/keras_mtl.json`; returns its path.

    Example:
    >>> import tempfile
    >>> os.path.basename(write_metadata(tempfile.mkdtemp(), {"format": FORMAT}))
    'keras_mtl.json'
    """
    path = Path(export_dir) / METADATA
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=2))
    return str(path)


def read_metadata(path: str | os.PathLike) -> dict:
    """The keras_mtl metadata stored beside an export (tasks, inputs, signatures, ops, warmup).

    Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); _ = write_metadata(d, {"format": FORMAT})
    >>> read_metadata(d)["format"]
    'keras_mtl/2'
    """
    file = Path(path) / METADATA
    if not file.is_file():
        raise FileNotFoundError(f"{path} has no {METADATA}: it is not a keras_mtl export.")
    return json.loads(file.read_text())


def input_specs(meta: Mapping) -> dict[str, tf.TensorSpec]:
    """The serving input specs the metadata documents (what a client must send).

    Example:
    >>> input_specs({"inputs": {"age": {"dtype": "float32", "shape": [None]}}})["age"]
    TensorSpec(shape=(None,), dtype=tf.float32, name='age')
    """
    return {
        name: tf.TensorSpec(info["shape"], tf.as_dtype(info["dtype"]), name=name)
        for name, info in meta["inputs"].items()
    }
