"""A model's input preprocessing as a stage of its own: found in the graph, run once.

Models built on `trunks.tabular` or `trunks.text` take raw values (strings,
unnormalised numbers) and encode them in their first layers, so the export
serves raw inputs. During training that encoding is the same every epoch and,
on census-income, costs three times the network itself; string lookups also
keep the step out of XLA. `split(model)` cuts the Functional graph where the
weightless, training-independent front (lookups, normalisation, tokenisation,
concatenation) meets the first layer that learns; `encode_columns` runs the
front once over in-memory columns. `MultiTaskModel` accepts either raw inputs
or the encoded dict, and trains the same weights either way.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _compat


@dataclasses.dataclass(frozen=True)
class Split:
    """The two halves of a model: `encoder` (raw inputs -> encoded dict) and
    `core` (encoded tensors -> outputs), sharing the model's layers; `frontier`
    holds the graph tensors where they meet, keyed like the encoded dict."""

    encoder: keras.Model
    core: keras.Model
    frontier: dict

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.frontier)

    def from_encoded(self, outputs) -> keras.Model:
        """A model from the encoded tensors (a list in `names` order) to any tensors of the graph."""
        # A list, not a dict: Keras wants dict keys to be the tensors' own
        # names, and these are inner tensors named by Keras.
        return keras.Model(list(self.frontier.values()), outputs)

    def accepts(self, inputs) -> bool:
        """Whether `inputs` is an encoded dict rather than raw model inputs."""
        return isinstance(inputs, Mapping) and set(inputs) == set(self.frontier)

    def as_list(self, inputs: Mapping) -> list:
        """An encoded dict as the list `core` and `from_encoded` models take."""
        return [inputs[k] for k in self.frontier]


def _is_front(op) -> bool:
    # A layer that learns, or behaves differently in training (Dropout,
    # BatchNormalization, noise), is model, not preprocessing.
    if isinstance(op, keras.layers.InputLayer):
        return True
    # `call_signature_parameters` (public) is what Keras derives its own
    # `_call_has_training_arg` from; an op that is not a Layer has neither.
    return not op.trainable_weights and "training" not in getattr(op, "call_signature_parameters", ("training",))


def producer(tensor):
    """The layer that made a Functional-graph tensor, and the node (call) that made it.

    Example:
    >>> x = keras.Input((2,))
    >>> layer = keras.layers.Dense(1, name="d")
    >>> op, node = producer(layer(x))
    >>> op.name, node.input_tensors[0] is x
    ('d', True)
    """
    history = _compat.keras_history(tensor)
    return history.operation, _compat.inbound_node(history.operation, history.node_index)


def walk_back(outputs, stop) -> None:
    """Visits a Functional graph from `outputs` towards its inputs, each tensor once, calling
    `stop(tensor)` on each; a path ends where it returns True (or at an input).

    Example:
    >>> x = keras.Input((2,), name="x")
    >>> y = keras.layers.Dense(1, name="d")(keras.layers.Dense(2, name="c")(x))
    >>> seen = []
    >>> walk_back(y, lambda t: seen.append(producer(t)[0].name) or False)
    >>> seen
    ['d', 'c', 'x']
    """
    seen: set[int] = set()

    def visit(tensor) -> None:
        if id(tensor) in seen:
            return
        seen.add(id(tensor))
        if stop(tensor):
            return
        op, node = producer(tensor)
        if isinstance(op, keras.layers.InputLayer):
            return
        for t in node.input_tensors:
            visit(t)

    for out in tf.nest.flatten(outputs):
        visit(out)


def _key(tensor) -> str:
    history = _compat.keras_history(tensor)
    op, index = history.operation, history.tensor_index
    return op.name if index == 0 else f"{op.name}_{index}"


def split(model: keras.Model) -> Split | None:
    """The model's preprocessing front and the rest, or None when encoding once gains nothing.

    A split exists when some raw input is a string (string lookups and
    tokenisation are where the time goes, and they cannot run under XLA)
    and the front ends in numeric tensors.

    Example:
    >>> import keras_mtl as mtl
    >>> lookup = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot", name="lookup")
    >>> raw = keras.Input((1,), dtype="string", name="c")
    >>> model = mtl.models.shared_bottom({"c": raw}, [mtl.tasks.Binary("y")], trunk=lambda x: keras.layers.Dense(4)(lookup(x["c"])))
    >>> split(model).names
    ('lookup',)
    """
    raw = tf.nest.flatten(model.inputs)
    if not any(t.dtype == "string" for t in raw):
        return None
    front: dict[int, bool] = {}

    def is_front_tensor(tensor) -> bool:
        op, node = producer(tensor)
        if id(op) not in front:
            front[id(op)] = _is_front(op) and all(is_front_tensor(t) for t in node.input_tensors)
        return front[id(op)]

    frontier: dict[str, keras.KerasTensor] = {}

    def at_front(tensor) -> bool:
        if is_front_tensor(tensor):
            frontier[_key(tensor)] = tensor
            return True
        return False

    walk_back(model.outputs, at_front)
    if any(t.dtype == "string" for t in frontier.values()):
        return None
    frontier = {k: frontier[k] for k in sorted(frontier)}
    encoder = keras.Model(model.input, frontier, name=f"{model.name}_encoder")
    core = keras.Model(list(frontier.values()), model.output, name=f"{model.name}_core")
    return Split(encoder, core, frontier)


# encoder -> its traced call, while the encoder lives.
_TRACED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _traced_encoder(encoder: keras.Model):
    # One trace per encoder, for every split and chunk size: its inputs'
    # batch dimension is left open. Tracing census-income's 39 lookups took
    # ~0.2 s, and a function per call traced each split's full and last,
    # shorter chunk apart: 5-6 traces a `Dataset.encoded`.
    if encoder not in _TRACED:
        signature = {
            t.name: tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in tf.nest.flatten(encoder.inputs)
        }
        _TRACED[encoder] = tf.function(
            lambda batch: encoder(batch, training=False), input_signature=[signature], autograph=False
        )
    return _TRACED[encoder]


def encode_columns(
    encoder: keras.Model, features: Mapping[str, np.ndarray], *, batch_size: int = 65536
) -> dict[str, np.ndarray]:
    """Runs `encoder` over in-memory feature columns, in large batches, in one compiled function.

    Example:
    >>> x = keras.Input((1,), name="x")
    >>> enc = keras.Model({"x": x}, {"y": keras.layers.Rescaling(2.0)(x)})
    >>> encode_columns(enc, {"x": np.array([[1.0], [2.0]])})["y"].ravel().tolist()
    [2.0, 4.0]
    """
    expected = {t.name: t for t in tf.nest.flatten(encoder.inputs)}
    columns = {}
    for name, column in features.items():
        if name not in expected:
            continue
        column = np.asarray(column)
        # Keras feeds (n,) columns to (None, 1) inputs; do the same here.
        if column.ndim == len(expected[name].shape) - 1:
            column = column[:, None]
        columns[name] = column
    missing = sorted(set(expected) - set(columns))
    if missing:
        raise ValueError(f"encode_columns: no column for model input(s) {missing}.")
    n = len(next(iter(columns.values())))
    run = _traced_encoder(encoder)
    parts = [
        # In the input's dtype, as Keras casts what it feeds a model (e.g. float64 columns).
        run({k: tf.constant(v[start : start + batch_size], dtype=expected[k].dtype) for k, v in columns.items()})
        for start in range(0, n, batch_size)
    ]
    return {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}


def encode_batches(encoder: keras.Model, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset`'s `(features, labels[, weights])` batches with the features run through `encoder`.

    For data read batch by batch (files larger than memory), where
    `encode_columns` has no columns to run on: the encoding happens in the
    input pipeline, beside the training step rather than inside it.

    Example:
    >>> x = keras.Input((1,), name="x")
    >>> enc = keras.Model({"x": x}, {"y": keras.layers.Rescaling(2.0)(x)})
    >>> ds = tf.data.Dataset.from_tensor_slices(({"x": [[1.0], [2.0]]}, [0, 1])).batch(2)
    >>> next(iter(encode_batches(enc, ds)))[0]["y"].numpy().ravel().tolist()
    [2.0, 4.0]
    """
    run = _traced_encoder(encoder)
    names = {t.name: t.dtype for t in tf.nest.flatten(encoder.inputs)}

    def encode(features, *rest):
        picked = {k: tf.cast(v, names[k]) if v.dtype != tf.string else v for k, v in features.items() if k in names}
        return (run(picked), *rest)

    return dataset.map(encode)
