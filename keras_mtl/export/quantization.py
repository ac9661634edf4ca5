"""Post-training compression for export: int8 weights (Keras' own `quantize`) or float16 weights.

The user's model is never changed: it is copied through a `.keras` round trip
(the one copy Keras keeps complete: weights, vocabularies, normalisation
statistics, keras_mtl's own layers) and the copy is compressed.

- `"int8"`: Keras' `Model.quantize` with weight-only int8
  (`Int8QuantizationConfig(activation_quantizer=None)`): every Dense,
  EinsumDense and Embedding kernel is stored as int8 with one float32 scale
  per output unit and dequantized as the layer runs; activations stay float.
  (Keras' default int8 also quantizes each layer's inputs per row at run
  time, which costs accuracy for little gain on a CPU server.)
  `keras_mtl.layers.SparseEmbedding` is quantized as the `Embedding` it is.
  Layers Keras has no int8 form for (keras_mtl's `Experts` and `Gate`,
  normalisation layers) stay float32 and are named in the result.
- `"float16"`: every layer from the first that learns onwards computes and
  stores its weights in float16 (dtype policy `"float16"`), except the
  layers that produce the outputs, which stay float32 (as keras_mtl's heads
  are); inputs, preprocessing (lookups, normalisation of raw values, which
  could overflow float16) and outputs keep their dtypes.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Callable, Collection, Mapping

import keras
import numpy as np

from keras_mtl import _compat
from keras_mtl import _encoding as encoding
from keras_mtl.saving import copy_model

MODES = ("int8", "float16")


class QuantizationError(ValueError):
    """A model that cannot be quantized as asked: the message names the layers or the cause."""


@dataclasses.dataclass(frozen=True)
class QuantizedCopy:
    """A compressed copy of a model, and what was compressed.

    Attributes:
        model: the copy (the user's model is unchanged).
        mode: `"int8"` or `"float16"`.
        quantized: `{layer path: class name}` of the layers whose learned
            weights were compressed.
        left_float: `{layer path: class name}` of the layers with learned
            weights that stayed float32 (no int8 form in Keras; for float16,
            the output layers).
        float_bytes: bytes of the served layers' weights in the model.
        quantized_bytes: bytes of the same weights in the copy.
        left_float_bytes: bytes of the weights of the `left_float` layers.
    """

    model: keras.Model
    mode: str
    quantized: dict
    left_float: dict
    float_bytes: int
    quantized_bytes: int
    left_float_bytes: int

    @property
    def ratio(self) -> float:
        """`quantized_bytes / float_bytes`."""
        return self.quantized_bytes / self.float_bytes if self.float_bytes else 1.0

    def summary(self) -> dict:
        """What the export's metadata records (`assets.extra/keras_mtl.json`, key "quantization")."""
        return {
            "mode": self.mode,
            "quantized": dict(self.quantized),
            "left_float": dict(self.left_float),
            "weight_bytes": {"float": self.float_bytes, self.mode: self.quantized_bytes},
            "ratio": round(self.ratio, 4),
        }


def quantized_copy(model: keras.Model, mode: str) -> QuantizedCopy:
    """A copy of `model` with int8 or float16 weights, for export; `model` itself is not changed.

    Raises a `ValueError` for an unknown mode, and a `QuantizationError` (a
    `ValueError`) for a model that is already quantized, one that does not
    round-trip through a `.keras` file, or one with no layer that the mode
    can compress (naming the layers left in float).

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((32,), name="x"), [mtl.tasks.Binary("a")],
    ...                                  trunk=mtl.trunks.mlp([64]))
    >>> small = quantized_copy(model, "int8")
    >>> sorted(small.quantized), small.left_float, round(small.ratio, 2)
    (['a', 'trunk_dense_0'], {}, 0.3)
    >>> model.get_layer("trunk_dense_0").kernel.dtype   # the user's model is as it was
    'float32'
    """
    if mode not in MODES:
        raise ValueError(f"quantize must be one of {', '.join(map(repr, MODES))} or None; got {mode!r}.")
    if not isinstance(model, keras.Model) or not model.built:
        raise ValueError(f"Only a built keras.Model can be quantized; got {type(model).__name__}.")
    done = {path: type(layer).__name__ for path, layer in _layers(model).items() if layer.quantization_mode}
    if done:
        raise QuantizationError(
            f"Model {model.name!r} is already quantized ({_listed(done)}); export it with quantize=None."
        )
    if mode == "int8":
        # Keras has no int8 form of a layer that computes in float16 (mixed precision): those run in float32.
        copy = _copy(model, lambda name: "float32" if name in ("float16", "mixed_float16") else None, None)
        _quantize_int8(copy)
    else:
        outputs = {_compat.keras_history(t).operation.name for t in model.outputs}
        copy = _copy(model, lambda name: "float16", _learned_layers(model) - outputs)
    quantized, left_float = {}, {}
    for path, layer in _layers(copy).items():
        own = _own_learned_weights(layer)
        if mode == "int8" and layer.quantization_mode == "int8":  # its int8 kernel is no longer trainable
            quantized[path] = type(layer).__name__
        elif not own:
            continue
        elif mode == "float16" and all(v.dtype == "float16" for v in own):
            quantized[path] = type(layer).__name__
        else:
            left_float[path] = type(layer).__name__
    copy_layers = _layers(copy)
    left_float_bytes = sum(_nbytes(_own_weights(copy_layers[p])) for p in left_float)
    if not quantized:
        raise QuantizationError(
            f"No layer of model {model.name!r} could be quantized to {mode}: its layers with learned "
            f"weights ({_listed(left_float) or 'none'}) have no {mode} form in Keras. Export it with "
            "quantize=None."
        )
    return QuantizedCopy(
        model=copy,
        mode=mode,
        quantized=quantized,
        left_float=left_float,
        float_bytes=_served_bytes(model),
        quantized_bytes=_served_bytes(copy),
        left_float_bytes=left_float_bytes,
    )


def is_quantized(model: keras.Model, mode: str) -> bool:
    """Whether `model` already holds `mode` weights (so it is its own quantized copy).

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((4,), name="x"), [mtl.tasks.Binary("a")])
    >>> is_quantized(model, "int8"), is_quantized(quantized_copy(model, "int8").model, "int8")
    (False, True)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}.")
    if mode == "int8":
        return any(layer.quantization_mode == "int8" for layer in _layers(model).values())
    return any(v.dtype == "float16" for layer in _layers(model).values() for v in _own_learned_weights(layer))


def output_differences(
    model: keras.Model, other: keras.Model, features: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """`{output: max |other - model|}` on the same raw features, as the export serves them.

    Floating-point outputs only: an integer one (`<task>_class_id`) changes
    by whole classes, which a largest difference does not describe.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((4,), name="x"), [mtl.tasks.Binary("a")])
    >>> diff = output_differences(model, quantized_copy(model, "int8").model, {"x": np.ones((3, 4))})
    >>> list(diff), 0 < diff["a"] < 0.05
    (['a'], True)
    """
    from keras_mtl.export import samples as samples_lib
    from keras_mtl.export import signatures

    specs = signatures.input_specs(model)
    inputs = samples_lib.serving_inputs(specs, features)
    tensors = {k: keras.ops.convert_to_tensor(v, dtype=specs[k].dtype.name) for k, v in inputs.items()}
    want = signatures.serve(model, tensors)
    got = signatures.serve(other, tensors)
    return {
        name: float(np.max(np.abs(np.asarray(got[name], np.float64) - np.asarray(want[name], np.float64))))
        if np.size(want[name]) else 0.0
        for name in want
        if want[name].dtype.is_floating
    }


def variables_bytes(export_dir: str | os.PathLike) -> int:
    """Bytes of an export's `variables/` folder (its weights as TF Serving reads them).

    Example:
    >>> variables_bytes("/nonexistent")
    0
    """
    folder = Path(export_dir) / "variables"
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


# ------------------------------------------------------------------ helpers


def _copy(model: keras.Model, policy: Callable[[str], str | None], names: Collection[str] | None) -> keras.Model:
    """`model` through a `.keras` round trip, with dtype policies replaced as `_set_policies` does."""
    try:
        return copy_model(
            model, edit_config=lambda config: _set_policies(config["config"]["layers"], policy, names), compile=False
        )
    except Exception as e:  # Keras raises many kinds; the cause is kept
        raise QuantizationError(
            f"Model {model.name!r} cannot be copied to quantize it (it must save to and load back from a "
            f".keras file): {e}"
        ) from e


def _set_policies(layer_configs: list, policy: Callable[[str], str | None], names: Collection[str] | None) -> None:
    """Replaces dtype policies in a Functional config's layers (those in `names`, or all), nested layers included.

    `policy(current name)` gives the new policy's name, or None to keep it.
    A nested layer (a Bidirectional's GRU, a nested model's layers) takes
    the same rule; input layers keep their dtypes.
    """
    for entry in layer_configs:
        config = entry.get("config", {})
        if names is None or config.get("name", entry.get("name")) in names:
            _set_policy(entry, policy)


def _set_policy(serialized, policy) -> None:
    if isinstance(serialized, list):
        for item in serialized:
            _set_policy(item, policy)
        return
    if not isinstance(serialized, dict):
        return
    if serialized.get("class_name") == "InputLayer":
        return
    config = serialized.get("config")
    if "class_name" in serialized and isinstance(config, dict):
        current = config.get("dtype")
        if isinstance(current, dict) and isinstance(current.get("config"), dict) and "name" in current["config"]:
            new = policy(current["config"]["name"])
            if new is not None:
                config["dtype"] = keras.dtype_policies.serialize(keras.dtype_policies.get(new))
        for key, value in config.items():
            if key != "dtype":
                _set_policy(value, policy)
    else:
        for value in serialized.values():
            _set_policy(value, policy)


def _quantize_int8(model: keras.Model) -> None:
    """Weight-only int8 by Keras' own `quantize`, on every layer without sublayers that has learned weights."""
    config = keras.quantizers.Int8QuantizationConfig(activation_quantizer=None)
    from keras_mtl.layers.sparse_embedding import SparseEmbedding

    candidates = {
        id(layer) for layer in _layers(model).values() if _own_learned_weights(layer) and not _compat.sublayers(layer)
    }
    with warnings.catch_warnings():
        # Keras warns for every layer without an int8 form (they are reported) and
        # numpy for how Keras converts kernels; neither is for the user.
        warnings.simplefilter("ignore")
        model.quantize(
            "int8",
            config=config,
            filters=lambda layer: id(layer) in candidates and not isinstance(layer, SparseEmbedding),
        )
        for layer in _layers(model).values():
            # Keras refuses subclasses (their call may differ); SparseEmbedding calls
            # Embedding's own quantized lookup once quantized.
            if id(layer) in candidates and isinstance(layer, SparseEmbedding):
                layer.quantize("int8", type_check=False, config=config)


def _layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """`{path: layer}` for every layer of the served graph (the Functional graph's layers and theirs)."""
    found = {}
    for top in model.layers:
        for layer in [top] + _compat.sublayers(top):
            found.setdefault(layer.path or layer.name, layer)
    return found


def _own_weights(layer: keras.layers.Layer) -> list:
    inner = {id(v) for sub in _compat.sublayers(layer, recursive=False) for v in sub.weights}
    return [v for v in layer.weights if id(v) not in inner]


def _own_learned_weights(layer: keras.layers.Layer) -> list:
    """The floating-point weights a layer itself created trainable (kernels, not statistics), frozen or not."""
    return [v for v in _compat.created_trainable(layer) if "float" in str(v.dtype)]


def _nbytes(weights) -> int:
    return int(sum(np.prod(v.shape, dtype=np.int64) * np.dtype(v.dtype).itemsize for v in weights))


def _served_bytes(model: keras.Model) -> int:
    unique = {id(v): v for layer in model.layers for v in layer.weights}
    return _nbytes(unique.values())


def _learned_layers(model: keras.Model) -> set[str]:
    """Names of the top-level layers that learn or compute on what a learning layer made.

    The rest (inputs, lookups, normalisation of raw values, concatenation of
    encoded columns) is preprocessing, which keeps its dtypes.
    """
    learned: set[str] = set()
    memo: dict[int, bool] = {}

    def after_learning(tensor) -> bool:
        if id(tensor) not in memo:
            op, node = encoding.producer(tensor)
            if isinstance(op, keras.layers.InputLayer):
                memo[id(tensor)] = False
            else:
                upstream = [after_learning(t) for t in node.input_tensors]  # every input visited
                learns = isinstance(op, keras.layers.Layer) and any(
                    _own_learned_weights(layer) for layer in [op] + _compat.sublayers(op)
                )
                memo[id(tensor)] = learns or any(upstream)
                if memo[id(tensor)]:
                    learned.add(op.name)
        return memo[id(tensor)]

    for tensor in model.outputs:
        after_learning(tensor)
    return learned


def _listed(layers: Mapping[str, str]) -> str:
    return ", ".join(f"{path} ({kind})" for path, kind in layers.items())
