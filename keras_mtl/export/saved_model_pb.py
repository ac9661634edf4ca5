"""Reads an export's `saved_model.pb`: the SignatureDefs TF Serving sees.

The metadata and the op lint describe what is in the file, not what the
Python code meant to put there.
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# Not a signature: TF's hook that initialises tables and variables on load.
INIT_OP = "__saved_model_init_op"


def read_saved_model(export_dir: str | os.PathLike) -> saved_model_pb2.SavedModel:
    """The parsed `saved_model.pb` of `export_dir`.

    Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); tf.saved_model.save(tf.Module(), d)
    >>> len(read_saved_model(d).meta_graphs)
    1
    """
    path = Path(export_dir) / "saved_model.pb"
    if not path.is_file():
        raise FileNotFoundError(f"No saved_model.pb in {export_dir}.")
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(path.read_bytes())
    return proto


def _tensor(info) -> dict:
    shape = None if info.tensor_shape.unknown_rank else [
        None if d.size < 0 else d.size for d in info.tensor_shape.dim
    ]
    return {"dtype": tf.as_dtype(info.dtype).name, "shape": shape}


def signature_table(proto: saved_model_pb2.SavedModel) -> dict[str, dict]:
    """`{signature: {"method", "inputs": {name: {dtype, shape}}, "outputs": {...}}}`, sorted.

    Shapes list `None` for any size (the batch axis).

    Example:
    >>> import tempfile
    >>> m = tf.Module()
    >>> m.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    >>> d = tempfile.mkdtemp(); tf.saved_model.save(m, d, signatures={"serving_default": m.f})
    >>> signature_table(read_saved_model(d))["serving_default"]["inputs"]
    {'x': {'dtype': 'float32', 'shape': [None, 2]}}
    """
    table = {}
    for graph in proto.meta_graphs:
        for name in sorted(graph.signature_def):
            if name == INIT_OP:
                continue
            sig = graph.signature_def[name]
            table[name] = {
                "method": sig.method_name,
                "inputs": {k: _tensor(sig.inputs[k]) for k in sorted(sig.inputs)},
                "outputs": {k: _tensor(sig.outputs[k]) for k in sorted(sig.outputs)},
            }
    return table
