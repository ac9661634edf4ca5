"""Versioned, atomic SavedModel export for TF Serving."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from keras_mtl.export import signatures
from keras_mtl.tasks import validate_name

METADATA = os.path.join("assets.extra", "keras_mtl.json")


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
    specs = signatures.input_specs(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda features: signatures.serve(model, features),
        input_signature=[specs],
    )
    return archive


def _metadata(model: keras.Model, version: int) -> dict:
    return {
        "format": "keras_mtl/1",
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
        "signatures": ["serving_default"],
    }


def export_saved_model(
    model: keras.Model,
    base_dir: str | os.PathLike,
    version: int | None = None,
    *,
    overwrite: bool = False,
) -> str:
    """Writes `model` as `base_dir/<version>/`, a SavedModel that TF Serving loads as it is.

    The `serving_default` signature takes raw features by input name
    (preprocessing runs inside the graph) and returns one output per task,
    keyed by task name. The version is the next integer after the largest
    existing one unless given. The export is written to a hidden sibling
    directory and renamed into place, so a crash at any point leaves no
    partial version where a polling TF Serving would see it.

    Args:
        model: the model to export (usually a `keras_mtl.MultiTaskModel`).
        base_dir: the model's base path, as TF Serving's `model_base_path`.
        version: the version number; default max(existing) + 1, or 1.
        overwrite: replace an existing version of the same number.

    Returns:
        The path of the version directory written.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    >>> path = export_saved_model(model, tempfile.mkdtemp())
    >>> os.path.basename(path)
    '1'
    """
    base = Path(base_dir)
    if version is None:
        existing = versions(base)
        version = existing[-1] + 1 if existing else 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a non-negative integer, got {version!r}.")
    for t in getattr(model, "tasks", ()):
        validate_name(t.name)
    final = base / str(version)
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"Version {version} already exists at {final}; pass overwrite=True to replace "
            "it, or leave version=None to write the next one."
        )
    base.mkdir(parents=True, exist_ok=True)
    # A dot-name is never an integer, so TF Serving ignores it while it is written.
    staging = base / f".staging-{version}-{uuid.uuid4().hex}"
    try:
        _archive(model).write_out(str(staging), verbose=False)
        meta = staging / METADATA
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(_metadata(model, version), indent=2))
        if final.exists():
            retired = base / f".retired-{version}-{uuid.uuid4().hex}"
            os.rename(final, retired)
            os.rename(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return str(final)


def read_metadata(path: str | os.PathLike) -> dict:
    """The keras_mtl metadata stored beside an export (tasks, inputs, signatures)."""
    return json.loads((Path(path) / METADATA).read_text())

