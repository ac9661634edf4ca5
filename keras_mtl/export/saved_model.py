"""Versioned, atomic SavedModel export for TF Serving: signatures, op lint, warmup, metadata."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Iterable, Mapping

import keras
import numpy as np

from keras_mtl import _compat
from keras_mtl.export import metadata as metadata_lib
from keras_mtl.export import op_lint, quantization, signatures, warmup
from keras_mtl.export import samples as samples_lib
from keras_mtl.export.metadata import METADATA, read_metadata  # noqa: F401  (public here since 0.1)
from keras_mtl.tasks import validate_name


def versions(base_dir: str | os.PathLike) -> list[int]:
    """The integer version directories under `base_dir`, ascending (what TF Serving sees).

    Example:
    >>> versions("/nonexistent")
    []
    """
    base = Path(base_dir)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def _archive(model: keras.Model) -> keras.export.ExportArchive:
    archive = keras.export.ExportArchive()
    archive.track(model)
    _compat.track_variables_once(archive)  # each weight written (and loaded) once
    for name, (fn, specs) in signatures.endpoints(model).items():
        archive.add_endpoint(name, fn, input_signature=[specs])
    return archive


def export_saved_model(
    model: keras.Model,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    overwrite: bool = False,
    warmup_samples: Mapping[str, object] | None = None,
    model_name: str | None = None,
    allowed_ops: Iterable[str] = (),
    quantize: str | None = None,
) -> str:
    """Writes `model` as `base_dir/<version>/`, a SavedModel that TF Serving loads as it is.

    Signatures (see `keras_mtl.export.signatures`): `serving_default` takes
    raw features by input name (preprocessing runs inside the graph) and
    returns every task's output keyed by task name, plus `<task>_class_id` /
    `<task>_tags` for Multiclass / Tagging tasks; `predict_<task>` returns one
    task's outputs; `serve_tf_example` takes serialized `tf.Example`s.
    Inputs, outputs and signatures are documented in
    `assets.extra/keras_mtl.json`.

    The version is the next integer after the largest existing one unless
    given. The export is written to a hidden sibling directory, linted and
    only then renamed into place, so neither a crash nor a failed check leaves
    a version where a polling TF Serving would see it.

    Args:
        model: the model to export (usually a `keras_mtl.MultiTaskModel`).
        base_dir: the model's base path, as TF Serving's `model_base_path`.
        version: the version number; default max(existing) + 1, or 1.
        overwrite: replace an existing version of the same number.
        warmup_samples: a few rows of raw features (a dict of arrays keyed by
            input name, like `MultiTaskData.sample()`, or a DataFrame of
            exactly the inputs; cast as `keras_mtl.export.request` casts); with them, one warmup
            request per signature goes to
            `assets.extra/tf_serving_warmup_requests`. Keep the rows at most
            the server's `max_batch_size` when batching is on.
        model_name: the model name in the warmup requests' `model_spec`
            (default: the name of `base_dir`).
        allowed_ops: op names beyond core TensorFlow and tensorflow-text that
            your TF Serving build links; any other op fails the export.
        quantize: `None` (float, as trained), `"int8"` or `"float16"`: export
            a compressed copy of the model, the model itself unchanged (see
            `keras_mtl.export.quantized_copy`). `"int8"` stores Dense,
            EinsumDense and Embedding kernels as int8 (weight-only, Keras'
            own `quantize`); `"float16"` computes and stores everything
            between the preprocessing and the output layers in float16.
            Inputs and outputs keep their dtypes. The metadata's
            "quantization" entry names the layers compressed and those left
            in float32, the weights' bytes before and after and, with
            `warmup_samples`, the largest difference per output from the
            float model on those rows. `verify` given the float model
            compares the export with the same compressed copy.

    Returns:
        The path of the version directory written.

    Example:
    >>> import tempfile, numpy as np, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    >>> path = export_saved_model(model, tempfile.mkdtemp(), warmup_samples={"x": np.ones((2, 3))})
    >>> os.path.basename(path), sorted(os.listdir(os.path.join(path, "assets.extra")))
    ('1', ['keras_mtl.json', 'tf_serving_warmup_requests'])
    """
    base = Path(base_dir)
    automatic = version is None
    if automatic:
        existing = versions(base)
        version = existing[-1] + 1 if existing else 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a non-negative integer, got {version!r}.")
    for t in getattr(model, "tasks", ()):
        validate_name(t.name)
    # Output-name clashes and inputs a tf.Example cannot carry fail before anything is written.
    signatures.output_keys(model)
    signatures.example_features(model)
    final = base / str(version)
    if final.exists() and not overwrite and not automatic:
        raise FileExistsError(_exists_message(version, final))
    # The user's model stays as it is; a compressed copy is what is written.
    compressed = quantization.quantized_copy(model, quantize) if quantize is not None else None
    float_model, model = model, compressed.model if compressed is not None else model
    # Built (and so checked, naming any bad input) before anything is written.
    requests = []
    if warmup_samples is not None:
        name = model_name if model_name is not None else base.resolve().name
        requests = warmup.warmup_logs(model, warmup_samples, name)
    quantized = compressed.summary() if compressed is not None else None
    if compressed is not None and warmup_samples is not None:
        quantized["max_abs_diff_vs_float"] = quantization.output_differences(float_model, model, warmup_samples)
    base.mkdir(parents=True, exist_ok=True)
    if not os.access(base, os.W_OK):
        raise PermissionError(f"Cannot export to {base}: the folder is not writable.")
    remove_stale_staging(base)
    # A dot-name is never an integer, so TF Serving ignores it while it is written.
    staging = base / f"{_STAGING}{_owner()}-{uuid.uuid4().hex}"
    try:
        _archive(model).write_out(str(staging), verbose=False)
        ops = op_lint.lint(staging, allowed_ops, shown_as=f"of {model.name} as {final} (not written)")
        warmup_info = None
        if requests:
            warmup.write_warmup(staging, requests)
            warmup_info = {
                "file": warmup.WARMUP_FILE,
                "records": len(requests),
                "batch_size": _rows(warmup_samples),
                "model_name": requests[0].predict_log.request.model_spec.name,
            }
        if quantized is not None:
            quantized["variables_bytes"] = quantization.variables_bytes(staging)
        while True:
            meta = metadata_lib.build_metadata(model, staging, version, ops, warmup_info, quantized)
            metadata_lib.write_metadata(staging, meta)
            if overwrite and final.exists():
                retired = base / f".retired-{version}-{uuid.uuid4().hex}"
                os.rename(final, retired)
                os.rename(staging, final)
                shutil.rmtree(retired, ignore_errors=True)
                break
            if _claim(staging, final):
                break
            # Another process wrote this version since it was chosen: never
            # replace its model; take the next number, or refuse a given one.
            if not automatic:
                raise FileExistsError(_exists_message(version, final))
            version = max(versions(base)[-1:] + [version]) + 1
            final = base / str(version)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return str(final)


def _exists_message(version: int, final: Path) -> str:
    return (
        f"Version {version} already exists at {final}; pass overwrite=True to replace "
        "it, or leave version=None to write the next one."
    )


def _claim(staging: Path, final: Path) -> bool:
    """Renames `staging` to `final` if no version is there; False (and nothing moved) if one is.

    A rename onto an existing non-empty directory fails atomically, so two
    exporters that chose the same number cannot both succeed. (An empty
    directory is no version: renaming over it is fine.)
    """
    try:
        os.rename(staging, final)
    except OSError:
        if final.exists():
            return False
        raise
    return True


# Staging folders are named `.staging-<host>-<pid>-<uuid>`: an export killed
# before its rename leaves one, which a later export on the same host removes
# once that process is gone (exports still running keep theirs).
_STAGING = ".staging-"


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def remove_stale_staging(base_dir: str | os.PathLike) -> list[str]:
    """Removes staging folders left under `base_dir` by exports on this host whose process has ended.

    Returns the names removed. Folders of running exports, and of other
    hosts (a shared file system), are left alone.

    Example:
    >>> import tempfile
    >>> base = Path(tempfile.mkdtemp())
    >>> (base / f".staging-{socket.gethostname()}-999999999-x").mkdir()
    >>> remove_stale_staging(base)
    ['.staging-...-999999999-x']
    """
    removed = []
    host = socket.gethostname()
    for path in Path(base_dir).glob(f"{_STAGING}*"):
        owner, _, _ = path.name[len(_STAGING):].rpartition("-")
        owner_host, _, pid = owner.rpartition("-")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _rows(samples) -> int:
    columns, _ = samples_lib.columns(samples)  # a dict of columns, a DataFrame or row dicts
    return int(np.shape(next(iter(columns.values())))[0])
