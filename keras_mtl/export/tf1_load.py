"""Runs PredictRequests on a SavedModel the way TF Serving's C++ loader does: TF1 graph + Session.

    python -m keras_mtl.export.tf1_load EXPORT_DIR REQUESTS RESPONSES ERRORS.json

REQUESTS is a TFRecord of `PredictionLog` protos (the format of TF Serving's
warmup file, so an export's own `assets.extra/tf_serving_warmup_requests` can
be replayed as it is). RESPONSES gets one `PredictionLog` per request with its
`PredictResponse` filled in; ERRORS.json a list with, per request, `null` or
why it failed. The exit status is non-zero only when the export does not load.

Kept free of keras_mtl and Keras imports, so the check runs in a process that
has only what TF Serving has: TensorFlow and the tensorflow-text ops library
(the serving API protos are plain protobuf messages).
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Sequence


def run_requests(export_dir: str, logs: Sequence) -> list:
    """Loads `export_dir` in a fresh TF1 graph once and answers each `PredictionLog`'s request.

    Like TF Serving, a request must name a signature of the export (empty
    means `serving_default`), give exactly its inputs, each with the
    signature's dtype, and may filter outputs with `output_filter`.

    Returns:
        Per request, `{output: array}` or, where that request failed, the
        error message (a `str`).

    Example:
    >>> import tempfile, numpy as np, tensorflow as tf
    >>> from tensorflow_serving.apis import prediction_log_pb2
    >>> m = tf.Module()
    >>> m.f = tf.function(lambda x: {"y": 2 * x}, input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    >>> d = tempfile.mkdtemp(); tf.saved_model.save(m, d, signatures={"serving_default": m.f})
    >>> log = prediction_log_pb2.PredictionLog()
    >>> log.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.5], "float32")))
    >>> bad = prediction_log_pb2.PredictionLog()
    >>> bad.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([b"1.5"], object)))
    >>> good, wrong = run_requests(d, [log, bad])
    >>> good["y"].tolist(), wrong
    ([3.0], "Signature 'serving_default': input 'x' expects float32 but the request has string.")
    """
    import tensorflow as tf

    # TF Serving links the tensorflow-text ops; load them the same way when installed.
    with contextlib.suppress(ImportError):
        import tensorflow_text  # noqa: F401
    results = []
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
        for log in logs:
            try:
                results.append(_run_one(tf, sess, meta, log.predict_log.request))
            except Exception as e:  # one bad request must not hide the others' answers
                results.append(str(e).strip() or type(e).__name__)
    return results


def _run_one(tf, sess, meta, request) -> dict:
    signature = request.model_spec.signature_name or "serving_default"
    if signature not in meta.signature_def:
        served = sorted(k for k in meta.signature_def if k != "__saved_model_init_op")
        raise ValueError(f"Signature {signature!r} not in the export; it has {served}.")
    sig = meta.signature_def[signature]
    missing = sorted(set(sig.inputs) - set(request.inputs))
    extra = sorted(set(request.inputs) - set(sig.inputs))
    if missing or extra:
        raise ValueError(
            f"Signature {signature!r} takes inputs {sorted(sig.inputs)}; "
            f"missing {missing}, unexpected {extra}."
        )
    feed = {}
    for name, proto in request.inputs.items():
        # TF Serving compares the request's dtype with the signature's before
        # running anything ("Expects arg[0] to be float but string is provided").
        want = sig.inputs[name].dtype
        if proto.dtype != want:
            raise TypeError(
                f"Signature {signature!r}: input {name!r} expects {tf.as_dtype(want).name} but "
                f"the request has {tf.as_dtype(proto.dtype).name}."
            )
        feed[sig.inputs[name].name] = tf.make_ndarray(proto)
    wanted = list(request.output_filter) or sorted(sig.outputs)
    unknown = sorted(set(wanted) - set(sig.outputs))
    if unknown:
        raise ValueError(
            f"Signature {signature!r} has outputs {sorted(sig.outputs)}; output_filter asks for {unknown}."
        )
    return sess.run({k: sig.outputs[k].name for k in wanted}, feed_dict=feed)


def main(argv: list[str]) -> int:
    """Command line: `EXPORT_DIR REQUESTS RESPONSES ERRORS.json` (see the module docstring).

    Example:
    >>> import os, tempfile, numpy as np, tensorflow as tf
    >>> from tensorflow_serving.apis import prediction_log_pb2
    >>> m = tf.Module()
    >>> m.f = tf.function(lambda x: {"y": x + 1}, input_signature=[tf.TensorSpec([None], tf.int64, name="x")])
    >>> d = tempfile.mkdtemp(); tf.saved_model.save(m, os.path.join(d, "1"), signatures={"serving_default": m.f})
    >>> log = prediction_log_pb2.PredictionLog()
    >>> log.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([41])))
    >>> with tf.io.TFRecordWriter(os.path.join(d, "requests")) as w:
    ...     w.write(log.SerializeToString())
    >>> main([os.path.join(d, "1"), *(os.path.join(d, f) for f in ("requests", "responses", "errors.json"))])
    0
    >>> open(os.path.join(d, "errors.json")).read()
    '[null]'
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    export_dir, requests_path, responses_path, errors_path = argv[:4]
    logs = [
        prediction_log_pb2.PredictionLog.FromString(record)
        for record in tf.data.TFRecordDataset(requests_path).as_numpy_iterator()
    ]
    results = run_requests(export_dir, logs)
    errors = []
    with tf.io.TFRecordWriter(responses_path) as writer:
        for log, result in zip(logs, results):
            out = prediction_log_pb2.PredictionLog()
            out.CopyFrom(log)
            if isinstance(result, str):
                errors.append(result)
            else:
                errors.append(None)
                for name, value in result.items():
                    out.predict_log.response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            writer.write(out.SerializeToString())
    with open(errors_path, "w") as f:
        json.dump(errors, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
