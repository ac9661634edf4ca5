"""Sample inputs as a signature takes them: exact dtypes and shapes, or serialized tf.Examples.

Warmup requests and `verify` both send samples through here, so a sample that
TF Serving would reject (a string where a float is expected, a wrong shape, a
missing input) is caught with an error naming the input, before anything is
written or run.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from keras_mtl.export.signatures import EXAMPLES, TF_EXAMPLE


def as_numpy(value) -> np.ndarray:
    """`value` as a numpy array; text becomes an object array of `bytes` (what TF feeds as strings).

    Example:
    >>> as_numpy(["a", "b"]).tolist()
    [b'a', b'b']
    """
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "US":
        # Object arrays keep every byte; fixed-width numpy bytes would drop
        # trailing NULs (which serialized protos can end with).
        flat = [s.encode() if isinstance(s, str) else s for s in array.ravel().tolist()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        array = out.reshape(array.shape)
    return array


def serving_inputs(
    specs: Mapping[str, tf.TensorSpec], samples: Mapping[str, object]
) -> dict[str, np.ndarray]:
    """Checks `samples` against `specs` and returns them with the exact dtype and rank.

    A trailing axis of 1 is dropped where the spec has none (the shape
    `MultiTaskData.sample()` and a model's `(None, 1)` inputs differ by), and
    numbers are cast to the spec's dtype; anything else that does not fit
    raises a `ValueError` naming the input.

    Example:
    >>> specs = {"age": tf.TensorSpec([None], tf.float32, name="age")}
    >>> serving_inputs(specs, {"age": [[30], [40]]})["age"]
    array([30., 40.], dtype=float32)
    """
    missing = sorted(set(specs) - set(samples))
    unknown = sorted(set(samples) - set(specs))
    if missing or unknown:
        raise ValueError(
            f"Samples must have exactly the model's inputs {sorted(specs)}; "
            f"missing {missing}, unknown {unknown}."
        )
    out, sizes = {}, {}
    for name, spec in specs.items():
        array = _cast(name, spec.dtype, as_numpy(samples[name]))
        rank = spec.shape.rank
        if array.ndim == rank + 1 and array.shape[-1] == 1:
            array = array.reshape(array.shape[:-1])
        if array.ndim != rank or not tf.TensorShape(array.shape).is_compatible_with(spec.shape):
            raise ValueError(
                f"Input {name!r} has shape {list(array.shape)}; the signature takes "
                f"{spec.shape.as_list()} (None: any size)."
            )
        out[name], sizes[name] = array, array.shape[0]
    if len(set(sizes.values())) > 1 or 0 in sizes.values():
        raise ValueError(f"Every input needs the same number of rows (at least 1); got {sizes}.")
    return out


def _cast(name: str, dtype: tf.DType, array: np.ndarray) -> np.ndarray:
    is_text = array.dtype == object
    if dtype == tf.string:
        if not is_text:
            raise ValueError(
                f"Input {name!r} takes strings; got values of dtype {array.dtype} ({_first(array)!r})."
            )
        return array
    if is_text or array.dtype.kind not in "biuf":
        raise ValueError(
            f"Input {name!r} takes {dtype.name}; got {'strings' if is_text else array.dtype} "
            f"({_first(array)!r})."
        )
    target = dtype.as_numpy_dtype
    if (dtype.is_integer or dtype == tf.bool) and array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"Input {name!r} takes {dtype.name}; got non-integer values ({_first(array)!r}).")
    return array.astype(target)


def _first(array: np.ndarray):
    return array.ravel()[0] if array.size else None


def to_examples(specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Serializes rows of checked inputs (from `serving_inputs`) as `tf.Example` protos.

    Returns a 1-D object array of `bytes`, one serialized example per row:
    what `serve_tf_example` takes.

    Example:
    >>> specs = {"x": tf.TensorSpec([None, 2], tf.float32, name="x")}
    >>> ex = to_examples(specs, serving_inputs(specs, {"x": [[1.0, 2.0]]}))
    >>> tf.train.Example.FromString(ex[0]).features.feature["x"].float_list.value[:]
    [1.0, 2.0]
    """
    rows = len(next(iter(inputs.values())))
    serialized = np.empty(rows, dtype=object)
    for i in range(rows):
        feature = {}
        for name, spec in specs.items():
            values = np.asarray(inputs[name][i]).ravel()
            if spec.dtype == tf.string:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values.tolist()))
            elif spec.dtype.is_floating:
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))
            else:
                feature[name] = tf.train.Feature(
                    int64_list=tf.train.Int64List(value=values.astype(np.int64).tolist())
                )
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        serialized[i] = example.SerializeToString()
    return serialized


def signature_inputs(
    signature: str, specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """What `signature` is sent for checked feature rows: the features, or them as tf.Examples.

    Example:
    >>> specs = {"x": tf.TensorSpec([None], tf.int64, name="x")}
    >>> sorted(signature_inputs("serve_tf_example", specs, {"x": np.array([1, 2])}))
    ['examples']
    """
    if signature == TF_EXAMPLE:
        return {EXAMPLES: to_examples(specs, inputs)}
    return dict(inputs)
