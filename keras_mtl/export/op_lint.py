"""Op lint: fails an export whose graph uses ops that TF Serving cannot run.

TF Serving's model server links core TensorFlow's kernels and the
tensorflow-text ops library, nothing else: a SavedModel with any other op
(a custom op, or `tf.py_function`, which needs a Python interpreter) is written
without complaint and then fails to load on the server. The lint reads every
op of `saved_model.pb` (the main graph and every function of its library) and
classifies it against TensorFlow's own op registry.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections import defaultdict
from typing import Iterable, NamedTuple

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_mtl import _compat
from keras_mtl.export.saved_model_pb import read_saved_model

# Registered by TensorFlow's Python runtime, so they are in the core registry,
# but their kernels call back into Python, which TF Serving does not have.
PYTHON_ONLY = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

# Runs in a fresh interpreter: the registry then holds exactly what `import
# tensorflow` registers (what TF Serving links as core), before and after the
# tensorflow-text ops library is loaded. The registry is read by
# `keras_mtl._compat.registered_op_names`, run by path (argv[1]): importing the
# keras_mtl package would cost the import of all of it.
_LIST_OPS = """
import json
import runpy
import sys

registered = runpy.run_path(sys.argv[1])["registered_op_names"]
core = registered()
try:
    import tensorflow_text
    text, error = sorted(registered() - core), None
except ImportError as e:
    text, error = [], str(e)
print(json.dumps({"core": sorted(core), "tensorflow_text": text, "error": error}))
"""


class OpLintError(ValueError):
    """The export uses ops that TF Serving cannot run."""


class KnownOps(NamedTuple):
    """Op names TF Serving can run: core TensorFlow, and the tensorflow-text library."""

    core: frozenset
    tensorflow_text: frozenset
    tensorflow_text_error: str | None


@functools.lru_cache(maxsize=1)
def known_ops() -> KnownOps:
    """The op registries, read once per process (a fresh interpreter takes a few seconds).

    Example:
    >>> ops = known_ops()
    >>> "MatMul" in ops.core, "TFText>WhitespaceTokenizeWithOffsetsV2" in ops.tensorflow_text
    (True, True)
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", _LIST_OPS, _compat.__file__], capture_output=True, text=True, env=env, timeout=300
    )
    if proc.returncode != 0:
        raise RuntimeError(f"Could not list TensorFlow's registered ops:\n{proc.stderr[-3000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return KnownOps(frozenset(found["core"]), frozenset(found["tensorflow_text"]), found["error"])


def graph_ops(proto: saved_model_pb2.SavedModel) -> dict[str, list[str]]:
    """`{op: [where]}` for every op in a SavedModel: "graph" or the function that uses it.

    Calls to the library's own functions (a node whose op is a function's
    name) are not ops and are left out.

    Example:
    >>> import tempfile
    >>> from keras_mtl.export.saved_model_pb import read_saved_model
    >>> m = tf.Module()
    >>> m.f = tf.function(lambda x: {"y": x * 2.0}, input_signature=[tf.TensorSpec([None], tf.float32)])
    >>> d = tempfile.mkdtemp(); tf.saved_model.save(m, d, signatures={"serving_default": m.f})
    >>> "Mul" in graph_ops(read_saved_model(d))
    True
    """
    functions, places = set(), defaultdict(set)
    for graph in proto.meta_graphs:
        library = graph.graph_def.library
        functions.update(f.signature.name for f in library.function)
        for node in graph.graph_def.node:
            places[node.op].add("graph")
        for function in library.function:
            for node in function.node_def:
                places[node.op].add(function.signature.name)
    return {op: sorted(where) for op, where in sorted(places.items()) if op not in functions}


def classify(op: str, allowed_ops: Iterable[str] = ()) -> str:
    """Where `op` comes from: "allowed", "python", "core", "tensorflow_text" or "unknown".

    Example:
    >>> [classify(op) for op in ("MatMul", "EagerPyFunc", "NoSuchOp")]
    ['core', 'python', 'unknown']
    """
    known = known_ops()
    if op in set(allowed_ops):
        return "allowed"
    if op in PYTHON_ONLY:
        return "python"
    if op in known.core:
        return "core"
    if op in known.tensorflow_text:
        return "tensorflow_text"
    return "unknown"


def lint(
    export_dir: str | os.PathLike, allowed_ops: Iterable[str] = (), *, shown_as: str | None = None
) -> dict[str, list[str]]:
    """Checks every op of the export; returns the ops by kind or raises `OpLintError` naming the bad ones.

    Args:
        export_dir: a SavedModel directory.
        allowed_ops: extra op names your TF Serving build links (custom ops).
        shown_as: how the error names the export (default: `export_dir`).

    Returns:
        `{"core": [...], "tensorflow_text": [...], "allowed": [...]}`; a
        non-empty "tensorflow_text" means Python clients must
        `import tensorflow_text` before loading the export.

    Example:
    >>> import tempfile
    >>> m = tf.Module()
    >>> m.f = tf.function(lambda x: {"y": x + 1.0}, input_signature=[tf.TensorSpec([None], tf.float32)])
    >>> d = tempfile.mkdtemp(); tf.saved_model.save(m, d, signatures={"serving_default": m.f})
    >>> report = lint(d)
    >>> "AddV2" in report["core"], report["tensorflow_text"]
    (True, [])
    """
    allowed_ops = frozenset(allowed_ops)
    kinds: dict[str, list[str]] = {"core": [], "tensorflow_text": [], "allowed": []}
    bad = []
    for op, where in graph_ops(read_saved_model(export_dir)).items():
        kind = classify(op, allowed_ops)
        if kind in kinds:
            kinds[kind].append(op)
        else:
            bad.append(_describe(op, kind, where))
    if bad:
        raise OpLintError(
            f"The export {shown_as or export_dir} uses op(s) TF Serving cannot run: {'; '.join(bad)}. "
            "Remove them from the model, or pass allowed_ops=[...] if your TF Serving "
            "build links them."
        )
    return kinds


def _describe(op: str, kind: str, where: list[str]) -> str:
    shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
    if kind == "python":
        why = "runs Python code, and TF Serving has no Python interpreter"
    else:
        why = f"neither core TensorFlow {tf.__version__} nor tensorflow-text"
        if known_ops().tensorflow_text_error:
            why += f" (tensorflow-text could not be imported: {known_ops().tensorflow_text_error})"
    return f"{op!r} ({why}; used in {shown})"
