"""Crash-safe model files: atomic `.keras` saves and checked loads.

A process killed while Keras writes `model.keras` or a BackupAndRestore
backup leaves a truncated file at the final path, and the next run fails deep
inside zipfile or h5py. Here every file is written under a temporary name in
the same folder, flushed to disk and renamed into place (`os.replace` is
atomic on POSIX), so a reader sees the old file or the new one, never half of
one. A file that is damaged anyway (a partial copy, a full disk) is reported
as `CorruptModelFileError` naming the file, never loaded.

| function / class          | replaces                          |
|---------------------------|-----------------------------------|
| `save_model(model, path)` | `model.save(path)`                |
| `load_model(path)`        | `keras.saving.load_model(path)`   |

The checkpoint callbacks built on them are
`keras_mtl.callbacks.AtomicModelCheckpoint` (for
`keras.callbacks.ModelCheckpoint`) and
`keras_mtl.callbacks.AtomicBackupAndRestore` (for
`keras.callbacks.BackupAndRestore`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import typing
import uuid
import zipfile
from pathlib import Path

import keras

from keras_mtl import _compat


class CorruptModelFileError(ValueError):
    """A model, checkpoint or backup file is incomplete or damaged, so it was not loaded."""


class UnsafeModelFileError(ValueError):
    """A model file holds Python code (a `Lambda` layer), which safe mode does not run."""


def _temporary_sibling(path: Path) -> Path:
    # Same folder, so the final rename never crosses a filesystem; a dot name
    # that no reader globs for while it is being written.
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, write) -> str:
    """Calls `write(temporary_path)`, then renames the result to `path` in one step.

    Example:
    >>> import tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "note.txt")
    >>> _ = atomic_write(target, lambda tmp: Path(tmp).write_text("hello"))
    >>> open(target).read()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    # Keras picks the format from the extension: keep it on the temporary name.
    tmp = tmp.with_name(tmp.name + "".join(path.suffixes[-2:]))
    try:
        write(str(tmp))
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return str(path)


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex: what backups and checkpoint states record to detect damage.

    Example:
    >>> import tempfile
    >>> f = os.path.join(tempfile.mkdtemp(), "x")
    >>> _ = open(f, "wb").write(b"abc")
    >>> sha256(f)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: keras.Model, path: str | os.PathLike) -> str:
    """`model.save(path)` that never leaves a partial `.keras` file at `path`.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Binary("a")])
    >>> path = save_model(model, os.path.join(tempfile.mkdtemp(), "m.keras"))
    >>> load_model(path).output_names
    ['a']
    """
    return atomic_write(path, lambda tmp: model.save(tmp))


def check_model_file(path: str | os.PathLike) -> None:
    """Raises `CorruptModelFileError` (or `FileNotFoundError`) unless `path` is a complete `.keras` archive.

    Checks the zip directory (written last, so a truncated file has none) and
    the CRC of every member.

    Example:
    >>> import tempfile
    >>> bad = os.path.join(tempfile.mkdtemp(), "m.keras")
    >>> _ = open(bad, "wb").write(b"PK\\x03\\x04 half a file")
    >>> check_model_file(bad)
    Traceback (most recent call last):
    ...
    keras_mtl.saving.CorruptModelFileError: ... is not a complete .keras archive ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    size = path.stat().st_size
    hint = (
        "it may have been cut short by a crash or a partial copy; use an intact copy "
        "(or the previous checkpoint) instead."
    )
    try:
        with zipfile.ZipFile(path) as z:
            broken = z.testzip()
            names = set(z.namelist())
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CorruptModelFileError(
            f"{path} ({size} bytes) is not a complete .keras archive ({e}); {hint}"
        ) from None
    if broken is not None:
        raise CorruptModelFileError(f"{path}: member {broken!r} is damaged (CRC mismatch); {hint}")
    if "config.json" not in names:
        raise CorruptModelFileError(f"{path} has no config.json, so it is not a Keras model file; {hint}")


def load_model(path: str | os.PathLike, **kwargs: typing.Any) -> keras.Model:
    """`keras.saving.load_model` after checking the file is complete; safe mode stays on.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Regression("y")])
    >>> path = save_model(model, os.path.join(tempfile.mkdtemp(), "m.keras"))
    >>> type(load_model(path)).__name__
    'MultiTaskModel'
    """
    if kwargs.get("safe_mode") is False:
        raise ValueError(
            "keras_mtl models load with safe_mode=True: they hold no Lambda layers or "
            "pickled code. A file that needs safe_mode=False is not a keras_mtl model."
        )
    check_model_file(path)
    try:
        return keras.saving.load_model(str(path), **kwargs)
    except ValueError as e:
        # Keras' own message is right but arrives as a traceback from deep in
        # deserialization; name the file and the ways out instead.
        if "Lambda" not in str(e) or "safe_mode" not in str(e):
            raise
        raise UnsafeModelFileError(
            f"{path} holds a Lambda layer with Python code, which is not loaded: it could run "
            "anything. Rebuild the model without Lambda layers (keras_mtl's factories use none), or, "
            "if you trust the file, load it with keras.saving.load_model and safe mode off, and "
            "replace each Lambda with a registered layer before saving it again."
        ) from None


def copy_model(
    model: keras.Model,
    *,
    edit_config: typing.Callable[[dict], None] | None = None,
    compile: bool = True,
) -> keras.Model:
    """A model equal to `model` that shares no layer or variable with it.

    Same architecture, weights, preprocessing state (vocabularies, statistics)
    and, with `compile`, compile config: a round trip through a `.keras`
    folder, the one copy that Keras keeps complete for every layer. For a
    teacher that must not move while a student sharing its layers trains, or
    a copy to change (quantize, extend) while the user's model stays as it is.
    `edit_config(config)` may change the saved `config.json` (as a dict, in
    place) before the copy is loaded from it, e.g. layers' dtype policies.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Binary("a")])
    >>> copy = copy_model(model)
    >>> copy is not model and copy.get_layer("a") is not model.get_layer("a")
    True
    """
    # The model's own classes by name, for layers the user did not register as serializable.
    classes = [type(model)] + [type(layer) for layer in _compat.sublayers(model)]
    custom = {cls.__name__: cls for cls in classes if not cls.__module__.startswith("keras.")}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model")  # unzipped: its config.json can be edited in place
        model.save(path, zipped=False)
        if edit_config is not None:
            config_file = os.path.join(path, "config.json")
            with open(config_file) as f:
                config = json.load(f)
            edit_config(config)
            with open(config_file, "w") as f:
                json.dump(config, f)
        return keras.saving.load_model(path, custom_objects=custom, compile=compile)


__all__ = [
    "CorruptModelFileError",
    "UnsafeModelFileError",
    "atomic_write",
    "check_model_file",
    "copy_model",
    "load_model",
    "save_model",
    "sha256",
]
