"""Clients of an export: requests with the signature's dtypes, and in-process predictions on DataFrames.

A SavedModel signature has one dtype per input (`age`: float32), and TF
Serving's gRPC API and a SavedModel called from Python refuse any other
(`expected to be a float tensor but is a double tensor`); only the REST API
converts JSON numbers itself. A DataFrame read by pandas holds int64 and
float64 columns, so these helpers cast each column to the dtype the export
documents, where that is exact, and name the input and row where it is not
(text in a numeric input, a missing column, NaN or inf, a value out of
range):

| helper                       | gives                                                         |
|------------------------------|---------------------------------------------------------------|
| `request(rows, path)`        | a `PredictRequest` for gRPC, or a REST body (`rest="instances"`/`"inputs"`) |
| `Predictor(path).predict(rows)` | the signature's outputs, from the SavedModel (or a `.keras` model) in this process |
| `Predictor(path).scores(rows)`  | the same as a DataFrame, one column per output value        |

The signatures themselves keep their exact dtypes: TF Serving checks a
request's dtypes against the SignatureDef before it runs anything, so a
signature cannot take "any number", and float32 is what the model computes in.
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2

from keras_mtl.export import metadata as metadata_lib
from keras_mtl.export import samples as samples_lib
from keras_mtl.export import saved_model_pb, signatures
from keras_mtl.export.samples import RequestError  # noqa: F401  (public here too)
from keras_mtl.export.saved_model import versions

REST_FORMATS = ("instances", "inputs")


class ExportError(ValueError):
    """A path that is not a loadable export, or a signature it does not have; the message names it."""


def resolve(path: str | os.PathLike) -> str:
    """The SavedModel version directory `path` names: itself, or the highest version under a base directory.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> base = tempfile.mkdtemp()
    >>> model = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Binary("a")])
    >>> _ = [mtl.export.export_saved_model(model, base) for _ in range(2)]
    >>> os.path.basename(resolve(base))
    '2'
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No export at {path}.")
    if (p / "saved_model.pb").is_file():
        return str(p)
    found = [v for v in versions(p) if (p / str(v) / "saved_model.pb").is_file()]
    if found:
        return str(p / str(found[-1]))
    raise ExportError(
        f"{path} is not a SavedModel export: it holds no saved_model.pb and no version folder "
        "(1/, 2/, ...) with one."
    )


def feature_specs(path: str | os.PathLike, signature: str = signatures.SERVING_DEFAULT) -> dict[str, tf.TensorSpec]:
    """The raw features a request to `signature` of the export at `path` carries, with their dtypes and shapes.

    For `serve_tf_example` these are the features each tf.Example holds.
    Read from `assets.extra/keras_mtl.json`, or from `saved_model.pb` for a
    SavedModel that keras_mtl did not write.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Binary("a")])
    >>> feature_specs(mtl.export.export_saved_model(model, tempfile.mkdtemp()))
    {'x': TensorSpec(shape=(None, 2), dtype=tf.float32, name='x')}
    """
    path = resolve(path)
    try:
        meta = metadata_lib.read_metadata(path)
    except FileNotFoundError:
        meta = None
    if meta is not None:
        table = meta["signatures"]
    else:
        try:
            table = saved_model_pb.signature_table(saved_model_pb.read_saved_model(path))
        except DecodeError as e:
            raise ExportError(f"Cannot load the SavedModel at {path}: saved_model.pb does not parse ({e}).") from None
    if signature not in table:
        raise ExportError(f"The export at {path} has no signature {signature!r}; it has {list(table)}.")
    if signature == signatures.TF_EXAMPLE:
        if meta is None:
            raise ExportError(f"The export at {path} has no keras_mtl.json to say what its tf.Examples hold.")
        return metadata_lib.input_specs(meta)
    return {
        name: tf.TensorSpec(info["shape"], tf.as_dtype(info["dtype"]), name=name)
        for name, info in table[signature]["inputs"].items()
    }


def request(
    rows,
    path: str | os.PathLike,
    signature: str = signatures.SERVING_DEFAULT,
    *,
    model_name: str | None = None,
    rest: str | None = None,
):
    """A request to `signature` of the export at `path`, each input cast to the dtype the export takes.

    Args:
        rows: a pandas DataFrame, a dict of columns or a list of row dicts;
            columns that are not inputs (ids, labels) are left out.
        path: the export (a version directory, or its base directory for the
            highest version); its dtypes and shapes come from its metadata.
        signature: `serving_default`, `predict_<task>` or
            `serve_tf_example` (the rows are serialized as tf.Examples).
        model_name: the `model_spec.name` of a gRPC request (default: the
            name the export's warmup requests use, else its base directory's).
        rest: None for a `tensorflow_serving.apis.predict_pb2.PredictRequest`
            (gRPC); `"instances"` (row format) or `"inputs"` (columnar
            format) for the JSON body of REST's `:predict`, a dict for
            `json.dumps` (text that is not UTF-8 goes as `{"b64": ...}`).

    Raises a `RequestError` naming the input when a column is missing or a
    value cannot be sent as the input's dtype (text in a numeric input,
    NaN or inf, a fraction in an integer input, a value out of range).

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((1,), name="age"), [mtl.tasks.Binary("a")])
    >>> path = mtl.export.export_saved_model(model, tempfile.mkdtemp())
    >>> rows = pd.DataFrame({"id": [7, 8], "age": [38, 41]})          # int64: the signature takes float32
    >>> tf.as_dtype(request(rows, path).inputs["age"].dtype).name
    'float32'
    >>> request(rows, path, rest="instances")
    {'signature_name': 'serving_default', 'instances': [{'age': 38.0}, {'age': 41.0}]}
    """
    if rest is not None and rest not in REST_FORMATS:
        raise ValueError(f"rest must be None (gRPC), 'instances' or 'inputs'; got {rest!r}.")
    path = resolve(path)
    specs = feature_specs(path, signature)
    inputs = samples_lib.serving_inputs(specs, rows, ignore_unknown=True)
    sent = samples_lib.signature_inputs(signature, specs, inputs)
    # Serialized tf.Examples are binary: always base64, even when they happen to be valid UTF-8.
    binary = {name: signature == signatures.TF_EXAMPLE for name in sent}
    if rest == "instances":
        size = len(next(iter(sent.values())))
        return {
            "signature_name": signature,
            "instances": [{name: _json(value[i], binary[name]) for name, value in sent.items()} for i in range(size)],
        }
    if rest == "inputs":
        return {
            "signature_name": signature,
            "inputs": {name: _json(value, binary[name]) for name, value in sent.items()},
        }
    proto = predict_pb2.PredictRequest()
    proto.model_spec.name = model_name if model_name is not None else _model_name(path)
    proto.model_spec.signature_name = signature
    for name, value in sent.items():
        proto.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return proto


def _model_name(path: str) -> str:
    with contextlib.suppress(FileNotFoundError):
        warmup = metadata_lib.read_metadata(path).get("warmup") or {}
        if warmup.get("model_name"):
            return warmup["model_name"]
    return Path(path).resolve().parent.name


def _json(value, binary: bool = False):
    """A cast array (or one row of it) as JSON values: numbers, UTF-8 text, or {"b64": ...} (TF Serving's binary form)."""
    if isinstance(value, np.ndarray):
        return [_json(v, binary) for v in value] if value.dtype == object else value.tolist()
    if isinstance(value, bytes):
        try:
            if not binary:
                return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value.item() if isinstance(value, np.generic) else value


class Predictor:
    """One signature of an export (or of a Keras model), called in this process on rows of any numeric dtype.

    `source` is a SavedModel version directory, its base directory (the
    highest version), a `.keras` file (loaded with
    `keras_mtl.saving.load_model`) or a Keras model; a model answers as its
    export's signature would (the same function is traced). Rows are cast
    like `request` casts them, so a DataFrame's int64 and float64 columns
    go to a float32 input, and what cannot be cast raises a `RequestError`
    naming the input and row (never TensorFlow's "input #0 was expected to
    be a float tensor").

    Attributes:
        source: the version directory or model file used.
        inputs: `{name: tf.TensorSpec}` the rows must give.
        outputs: the output names, each task's then its derived ones.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((1,), name="age"), [mtl.tasks.Multiclass("tier", 3)])
    >>> predictor = Predictor(mtl.export.export_saved_model(model, tempfile.mkdtemp()))
    >>> predictor.outputs
    ['tier', 'tier_class_id']
    >>> list(predictor.scores(pd.DataFrame({"age": [38, 41]})).columns)
    ['tier_0', 'tier_1', 'tier_2', 'tier_class_id']
    """

    def __init__(self, source, signature: str = signatures.SERVING_DEFAULT):
        self.signature = signature
        if isinstance(source, keras.Model) or str(source).endswith(".keras"):
            self._from_model(source)
        else:
            self._from_saved_model(resolve(source))

    def _from_model(self, source) -> None:
        from keras_mtl import saving

        model = source if isinstance(source, keras.Model) else saving.load_model(source)
        self.source = model.name if isinstance(source, keras.Model) else str(source)
        try:
            tasks = signatures.signature_tasks(model, self.signature)
        except ValueError as e:
            raise ExportError(f"{self.source}: {e}") from None
        endpoint, specs = signatures.endpoints(model)[self.signature]
        function = tf.function(endpoint, input_signature=[specs])
        self._call = lambda inputs: function(inputs)
        self.inputs = signatures.input_specs(model)
        keys = signatures.output_keys(model)
        self.outputs = [key for task in tasks for key in keys[task]]

    def _from_saved_model(self, path: str) -> None:
        self.source = path
        self.inputs = feature_specs(path, self.signature)  # names a signature the export lacks
        try:
            meta = metadata_lib.read_metadata(path)
        except FileNotFoundError:
            meta = {}
        if meta.get("ops", {}).get("tensorflow_text"):
            with contextlib.suppress(ImportError):  # registers the ops the graph uses
                import tensorflow_text  # noqa: F401
        try:
            loaded = tf.saved_model.load(path)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise ExportError(f"Cannot load the SavedModel at {path}: {_first_line(e)}") from None
        function = loaded.signatures[self.signature]
        self._loaded = loaded  # the signature's variables and tables live as long as it does
        self._call = lambda inputs: function(**inputs)
        names = sorted(function.structured_outputs)
        ordered = []
        for task in meta.get("tasks", []):
            ordered += [k for k in (task["name"], f"{task['name']}_class_id", f"{task['name']}_tags") if k in names]
        self.outputs = ordered + [k for k in names if k not in ordered]

    def predict(self, rows, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """`{output: array}` for `rows` (a DataFrame, a dict of columns or a list of row dicts).

        Columns that are not inputs are ignored; `batch_size` rows go to the
        signature at a time (default: all at once).
        """
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        inputs = samples_lib.serving_inputs(self.inputs, rows, ignore_unknown=True)
        sent = samples_lib.signature_inputs(self.signature, self.inputs, inputs)
        size = len(next(iter(sent.values())))
        step = batch_size or size
        parts: dict[str, list] = {key: [] for key in self.outputs}
        for start in range(0, size, step):
            answer = self._call({name: tf.constant(v[start : start + step]) for name, v in sent.items()})
            for key in self.outputs:
                parts[key].append(answer[key].numpy())
        return {key: np.concatenate(values) for key, values in parts.items()}

    def scores(self, rows, batch_size: int | None = None) -> pd.DataFrame:
        """`predict` as a DataFrame with the rows' index: one column per output value.

        An output of shape `[batch]` is the column `<output>` (a Binary
        task's probability, a Multiclass task's `<task>_class_id`); one of
        shape `[batch, k]` the columns `<output>_0` .. `<output>_{k-1}` (a
        Multiclass task's probabilities, a Regression with units=k); deeper
        ones `<output>_<i>_<j>`.
        """
        outputs = self.predict(rows, batch_size)
        columns: dict[str, np.ndarray] = {}
        for key in self.outputs:
            value = outputs[key]
            if value.ndim == 1:
                named = {key: value}
            else:
                flat = value.reshape(len(value), -1)
                named = {
                    f"{key}_{'_'.join(map(str, index))}": flat[:, j]
                    for j, index in enumerate(np.ndindex(*value.shape[1:]))
                }
            for name, column in named.items():
                if name in columns:
                    raise ExportError(f"Two outputs of {self.source} would both be the column {name!r}.")
                columns[name] = column
        index = rows.index if isinstance(rows, pd.DataFrame) else None
        return pd.DataFrame(columns, index=index)


def predict(source, rows, signature: str = signatures.SERVING_DEFAULT, *, batch_size: int | None = None) -> dict[str, np.ndarray]:
    """`Predictor(source, signature).predict(rows, batch_size)`: one call on rows of any numeric dtype.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((1,), name="age"), [mtl.tasks.Binary("a")])
    >>> path = mtl.export.export_saved_model(model, tempfile.mkdtemp())
    >>> predict(path, pd.DataFrame({"age": [38, 41, 57]}))["a"].shape
    (3,)
    >>> predict(path, pd.DataFrame({"age": ["38"]}))
    Traceback (most recent call last):
    ...
    keras_mtl.export.samples.RequestError: Input 'age' takes float32; got strings (b'38') at row 0.
    """
    return Predictor(source, signature).predict(rows, batch_size)


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


__all__ = ["ExportError", "Predictor", "RequestError", "feature_specs", "predict", "request", "resolve"]
