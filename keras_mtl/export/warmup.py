"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays this TFRecord of `PredictionLog` protos when it loads a
version and before it serves it, so the first real request does not pay for
graph optimisation and lookup-table initialisation. A record that fails makes
the version fail to load, which is why `verify` replays them too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from keras_mtl.export import samples as samples_lib
from keras_mtl.export import signatures

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def predict_log(
    model_name: str, signature: str, inputs: Mapping[str, object]
) -> prediction_log_pb2.PredictionLog:
    """One `PredictionLog` holding a `PredictRequest` for `signature`, inputs as given.

    The inputs are not checked or cast: the request carries exactly the
    dtypes given, as a client's would.

    Example:
    >>> log = predict_log("census", "serving_default", {"age": np.array([38.0], "float32")})
    >>> log.predict_log.request.inputs["age"].dtype == tf.float32.as_datatype_enum
    True
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(samples_lib.as_numpy(value)))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def warmup_logs(
    model: keras.Model, samples: Mapping[str, object], model_name: str
) -> list[prediction_log_pb2.PredictionLog]:
    """One request per signature of the export of `model`, built from `samples`.

    `samples` is a dict of arrays keyed by input name (what
    `MultiTaskData.sample()` returns); the `serve_tf_example` request sends
    the same rows as serialized `tf.Example`s.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Binary("a")])
    >>> logs = warmup_logs(model, {"x": np.ones((2, 2))}, "m")
    >>> [log.predict_log.request.model_spec.signature_name for log in logs]
    ['serving_default', 'predict_a', 'serve_tf_example']
    """
    specs = signatures.input_specs(model)
    inputs = samples_lib.serving_inputs(specs, samples)
    return [
        predict_log(model_name, name, samples_lib.signature_inputs(name, specs, inputs))
        for name in signatures.signature_names(model)
    ]


def write_warmup(export_dir: str | os.PathLike, logs: Sequence[prediction_log_pb2.PredictionLog]) -> str:
    """Writes `logs` as the export's warmup file and returns its path.

    Example:
    >>> import tempfile
    >>> path = write_warmup(tempfile.mkdtemp(), [predict_log("m", "serving_default", {"x": [1.0]})])
    >>> os.path.basename(path)
    'tf_serving_warmup_requests'
    """
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_records(path, logs)


def write_records(path: str | os.PathLike, logs: Sequence[prediction_log_pb2.PredictionLog]) -> str:
    """Writes `logs` to a TFRecord file at `path` (the warmup format) and returns the path.

    Example:
    >>> import tempfile
    >>> path = write_records(os.path.join(tempfile.mkdtemp(), "r"), [predict_log("m", "s", {"x": [1]})])
    >>> len(read_records(path))
    1
    """
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return str(path)


def read_records(path: str | os.PathLike) -> list[prediction_log_pb2.PredictionLog]:
    """The `PredictionLog`s of a TFRecord file, parsed (a bad record raises `DecodeError`).

    Example:
    >>> import tempfile
    >>> path = write_records(os.path.join(tempfile.mkdtemp(), "r"), [predict_log("m", "s", {"x": [1]})])
    >>> read_records(path)[0].predict_log.request.model_spec.signature_name
    's'
    """
    return [
        prediction_log_pb2.PredictionLog.FromString(record)
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    ]


def read_warmup(export_dir: str | os.PathLike) -> list[prediction_log_pb2.PredictionLog]:
    """The export's warmup records, parsed; `[]` when it has none.

    Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = write_warmup(d, [predict_log("m", "serving_default", {"x": [1.0]})])
    >>> [log.predict_log.request.model_spec.name for log in read_warmup(d)]
    ['m']
    """
    path = Path(export_dir) / WARMUP_FILE
    return read_records(path) if path.is_file() else []


def request_arrays(log: prediction_log_pb2.PredictionLog) -> tuple[str, dict[str, np.ndarray]]:
    """`(signature, {input: array})` of a PredictionLog's PredictRequest.

    Example:
    >>> request_arrays(predict_log("m", "predict_a", {"x": [1.0, 2.0]}))
    ('predict_a', {'x': array([1., 2.])})
    """
    request = log.predict_log.request
    signature = request.model_spec.signature_name or signatures.SERVING_DEFAULT
    return signature, {name: tf.make_ndarray(t) for name, t in request.inputs.items()}
