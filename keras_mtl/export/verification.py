"""Checks that an export loads the way TF Serving loads it and that every signature answers like the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_mtl.export import metadata as metadata_lib
from keras_mtl.export import samples as samples_lib
from keras_mtl.export import quantization, signatures, warmup
from keras_mtl.export.client import resolve


class VerificationError(AssertionError):
    """The export did not load, a request failed, or its answers differ from the model's."""


def run_requests_in_fresh_process(
    path: str | os.PathLike, logs: Sequence, timeout: float = 300
) -> list[dict[str, np.ndarray] | str]:
    """Answers `PredictionLog` requests with the export at `path`, in a new Python process (TF1 graph mode).

    All requests share one process and one load, which costs a few seconds.

    Returns:
        Per request, `{output: array}`, or the error message where it failed.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Binary("a")])
    >>> path = mtl.export.export_saved_model(model, tempfile.mkdtemp())
    >>> ok, bad = run_requests_in_fresh_process(path, [
    ...     warmup.predict_log("m", "predict_a", {"x": np.ones((3, 2), "float32")}),
    ...     warmup.predict_log("m", "predict_b", {"x": np.ones((3, 2), "float32")})])
    >>> ok["a"].shape, bad.startswith("Signature 'predict_b' not in the export")
    ((3,), True)
    """
    with tempfile.TemporaryDirectory() as tmp:
        requests = warmup.write_records(os.path.join(tmp, "requests"), logs)
        responses, errors = os.path.join(tmp, "responses"), os.path.join(tmp, "errors.json")
        proc = subprocess.run(
            [sys.executable, "-m", "keras_mtl.export.tf1_load", str(path), requests, responses, errors],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise VerificationError(
                f"The export at {path} failed to load or run in TF1 graph mode (as TF Serving "
                f"loads it):\n{proc.stderr[-4000:]}"
            )
        with open(errors) as f:
            failed = json.load(f)
        answered = warmup.read_records(responses)
    return [
        error if error is not None else {
            name: tf.make_ndarray(t) for name, t in log.predict_log.response.outputs.items()
        }
        for log, error in zip(answered, failed)
    ]


def run_in_fresh_process(
    path: str | os.PathLike,
    inputs: Mapping[str, object],
    signature: str = signatures.SERVING_DEFAULT,
    timeout: float = 300,
) -> dict[str, np.ndarray]:
    """Runs one signature of the export at `path` on `inputs`, sent as given (dtypes unchanged).

    Raises a `VerificationError` carrying the server-side message when the
    request fails (e.g. a string sent where the signature takes a float).

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    >>> path = mtl.export.export_saved_model(model, tempfile.mkdtemp())
    >>> run_in_fresh_process(path, {"x": np.ones((2, 3), "float32")}, "predict_a")["a"].shape
    (2,)
    """
    log = warmup.predict_log("verify", signature, inputs)
    (result,) = run_requests_in_fresh_process(path, [log], timeout)
    if isinstance(result, str):
        raise VerificationError(f"Signature {signature!r} failed on the export at {path}: {result}")
    return result


def verify(
    path: str | os.PathLike,
    samples=None,
    model: keras.Model | None = None,
    *,
    atol: float = 1e-5,
) -> dict:
    """Loads the export at `path` like TF Serving, runs every signature and warmup request, compares.

    The export is loaded in a fresh process with
    `tf.compat.v1.saved_model.loader.load` and run with `Session.run` on each
    signature's tensor names, which is the path TF Serving's C++ loader takes
    (lookup tables and all). `samples` (raw features keyed by input name: a
    dict of columns, a DataFrame or a list of row dicts) go to every
    signature: as features to `serving_default` and `predict_<task>`, as
    serialized tf.Examples to `serve_tf_example`. The export's warmup
    requests are replayed too, as TF Serving does before it serves a
    version; without samples only they are sent. With `model`, every output
    of every signature and warmup request must equal the Keras model's
    within `atol`; without it, the per-task and tf.Example signatures must
    agree with `serving_default` (warmup records with the serving_default
    record, which keras_mtl writes from the same rows).

    A quantized export (`export_saved_model(..., quantize="int8")`) given the
    float model is compared with the model's quantized copy, made as the
    export made it, so `atol` keeps its meaning; the report's
    "quantization" gives the largest difference from the float model too.

    Samples are cast to the signature's dtypes as `keras_mtl.export.request`
    and `Predictor` cast them (an int64 or float64 column to a float32
    input); a value that cannot be cast raises a `RequestError` naming the
    input and row. The report's `cast` lists the inputs that were cast
    (`{"age": "int64 -> float32"}`): a gRPC client, or a Python caller of
    the loaded SavedModel, sending those columns unconverted is refused, so
    it must cast them too (the helpers do).

    Returns:
        `{"path", "reference": "model" | "serving_default", "outputs"
        (serving_default's shapes), "max_abs_diff" (against the model, or
        None), "samples" (rows sent), "cast", "signatures": {name:
        {"outputs", "max_abs_diff"}}, "warmup": {"records", "max_abs_diff"},
        "quantization": None, or {"mode", "max_abs_diff_vs_float"}}`.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    >>> path = mtl.export.export_saved_model(model, tempfile.mkdtemp(), warmup_samples={"x": np.zeros((1, 3))})
    >>> report = verify(path, {"x": np.ones((2, 3))}, model)
    >>> sorted(report["signatures"]), report["warmup"]["records"], report["max_abs_diff"] < 1e-5, report["cast"]
    (['predict_a', 'serve_tf_example', 'serving_default'], 3, True, {'x': 'float64 -> float32'})
    """
    path = resolve(path)
    model, float_model, mode = _reference(path, model)
    specs, names = _signatures_to_check(path, model)
    replayed = warmup.read_warmup(path)
    if samples is None:
        if not replayed:
            raise samples_lib.RequestError(
                f"The export at {path} has no warmup requests ({warmup.WARMUP_FILE}) and no samples "
                "were given: there is nothing to send it."
            )
        names, inputs, cast = [], {}, {}
    elif specs is not None:
        inputs = samples_lib.serving_inputs(specs, samples)
        cast = samples_lib.casts(specs, samples)
    else:
        inputs = {k: samples_lib.as_numpy(v) for k, v in samples_lib.columns(samples)[0].items()}
        cast = {}
    logs = [
        warmup.predict_log("verify", name, samples_lib.signature_inputs(name, specs or {}, inputs))
        for name in names
    ]
    results = run_requests_in_fresh_process(path, logs + replayed)
    served = dict(zip(names, results[: len(names)]))

    problems, report, float_diffs = [], {}, []
    default = served.get(signatures.SERVING_DEFAULT)
    for name, got in served.items():
        if isinstance(got, str):
            problems.append(f"{name}: {got}")
            report[name] = {"error": got}
            continue
        if model is not None:
            want = _model_answer(model, name, inputs)  # names come from the model: all known
        elif isinstance(default, dict):
            want = {k: default[k] for k in got if k in default}
        else:
            want = None
        diff = _compare(name, got, want, atol, problems) if want is not None else None
        report[name] = {"outputs": {k: list(v.shape) for k, v in got.items()}, "max_abs_diff": diff}
        if float_model is not None:
            float_diffs.append(_float_difference(got, _model_answer(float_model, name, inputs)))

    answers = list(zip(replayed, results[len(names) :]))
    warm_default = next(
        (got for log, got in answers
         if isinstance(got, dict) and warmup.request_arrays(log)[0] == signatures.SERVING_DEFAULT),
        None,
    )
    warmup_diffs = []
    for i, (log, got) in enumerate(answers):
        signature = warmup.request_arrays(log)[0]
        where = f"warmup record {i} ({signature})"
        if isinstance(got, str):
            problems.append(f"{where}: {got}")
        elif model is not None:
            _, arrays = warmup.request_arrays(log)
            try:
                want = _model_answer(model, signature, arrays)
            except ValueError as e:  # a record for a signature the model does not have
                problems.append(f"{where}: {e}")
                continue
            warmup_diffs.append(_compare(where, got, want, atol, problems))
            if float_model is not None:
                float_diffs.append(_float_difference(got, _model_answer(float_model, signature, arrays)))
        elif warm_default is not None and signature != signatures.SERVING_DEFAULT and _same_rows(got, warm_default):
            want = {k: warm_default[k] for k in got if k in warm_default}
            warmup_diffs.append(_compare(where, got, want, atol, problems))
    if problems:
        reference = "model" if model is not None else "serving_default signature"
        if float_model is not None:
            reference = f"{mode} copy of the model"
        raise VerificationError(
            f"The export at {path} does not answer like the {reference} (tolerance {atol}):\n  "
            + "\n  ".join(problems)
        )
    against_model = [
        r["max_abs_diff"] for r in report.values() if r["max_abs_diff"] is not None
    ] + warmup_diffs
    if signatures.SERVING_DEFAULT in report:
        outputs = report[signatures.SERVING_DEFAULT]["outputs"]
    else:
        outputs = {k: list(v.shape) for k, v in (warm_default or {}).items()}
    return {
        "path": str(path),
        "reference": "model" if model is not None else signatures.SERVING_DEFAULT,
        "outputs": outputs,
        "max_abs_diff": max(against_model) if model is not None and against_model else None,
        "samples": len(next(iter(inputs.values()))) if inputs else 0,
        "cast": cast,
        "signatures": report,
        "warmup": {
            "records": len(replayed),
            "max_abs_diff": max(warmup_diffs) if warmup_diffs else None,
        },
        "quantization": None if mode is None else {
            "mode": mode,
            "max_abs_diff_vs_float": max(float_diffs) if float_diffs else None,
        },
    }


def _float_difference(got: Mapping, want: Mapping) -> float:
    """Max |got - want| over the floating-point outputs (a class id changes by whole classes)."""
    floats = [k for k, v in want.items() if k in got and np.issubdtype(np.asarray(v).dtype, np.floating)]
    return _compare("", {k: got[k] for k in floats}, {k: want[k] for k in floats}, np.inf, [])


def _reference(path, model) -> tuple:
    """`(model the export must equal, the float model or None, quantization mode or None)`.

    Given the float model of a quantized export, the reference is its
    quantized copy, made as `export_saved_model` made it.
    """
    try:
        meta = metadata_lib.read_metadata(path)
    except FileNotFoundError:
        return model, None, None
    mode = (meta.get("quantization") or {}).get("mode")
    if mode is None or model is None or quantization.is_quantized(model, mode):
        return model, None, mode
    return quantization.quantized_copy(model, mode).model, model, mode


def _same_rows(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> bool:
    """Whether two answers are for the same number of rows (so one can check the other)."""
    sizes = {len(v) for v in a.values() if np.ndim(v)} | {len(v) for v in b.values() if np.ndim(v)}
    return len(sizes) == 1


def _signatures_to_check(path, model) -> tuple[dict | None, list[str]]:
    """The input specs samples are checked against, and the signatures to run."""
    try:
        meta = metadata_lib.read_metadata(path)
    except FileNotFoundError:
        meta = None
    if model is not None:
        names = signatures.signature_names(model)
        if meta is not None and sorted(meta["signatures"]) != sorted(names):
            raise VerificationError(
                f"The export has signatures {sorted(meta['signatures'])}; the model's export "
                f"would have {sorted(names)}."
            )
        return signatures.input_specs(model), names
    if meta is not None:
        return metadata_lib.input_specs(meta), list(meta["signatures"])
    return None, [signatures.SERVING_DEFAULT]  # not a keras_mtl export: only its default is known


def _model_answer(
    model: keras.Model, signature: str, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """What the Keras model answers to `signature` on `inputs`: raw features, or tf.Examples.

    Given features, serve_tf_example's answer is the model's on those
    features, so the export's parsing is checked rather than reused.
    """
    if signatures.EXAMPLES in inputs and signature == signatures.TF_EXAMPLE:
        features = signatures.parse_examples(
            model, tf.constant(inputs[signatures.EXAMPLES], dtype=tf.string)
        )
    else:
        specs = signatures.input_specs(model)
        features = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
    tasks = signatures.signature_tasks(model, signature)
    return {k: v.numpy() for k, v in signatures.serve(model, features, tasks).items()}


def _compare(where: str, got: Mapping, want: Mapping, atol: float, problems: list) -> float:
    """Max |got - want| over the outputs; each mismatch is added to `problems`."""
    if sorted(got) != sorted(want):
        problems.append(f"{where}: the export returns {sorted(got)} but the model has outputs {sorted(want)}.")
        return float("inf")
    worst = 0.0
    for name, expected in want.items():
        answer = np.asarray(got[name])
        if answer.shape != expected.shape:
            problems.append(
                f"{where}: output {name!r} has shape {answer.shape} in the export, {expected.shape} in the model."
            )
            worst = float("inf")
            continue
        diff = (
            float(np.max(np.abs(answer.astype(np.float64) - expected.astype(np.float64))))
            if expected.size
            else 0.0
        )
        if not diff <= atol:
            problems.append(f"{where}: output {name!r} differs from the model's by {diff:.3g}.")
        worst = max(worst, diff)
    return worst
