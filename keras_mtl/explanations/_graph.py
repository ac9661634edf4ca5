"""Where gradients can enter a model, and which raw input column each entry belongs to.

A model built on `trunks.tabular` or `trunks.text` takes raw values: strings
go through lookups, hashing and tokenisation before anything differentiable
happens. Attributions therefore start at each input's *entry*: the first
floating-point tensor on its path that gradients reach (a raw number, a
one-hot block, an embedding, a token-embedding sequence). The model is cut
there; what lies before the cut (integer ids a pooling layer reads for its
mask) is held fixed at the example's values.
"""

from __future__ import annotations

import dataclasses

import keras

from keras_mtl._encoding import producer, walk_back

_FLOATS = ("float16", "bfloat16", "float32", "float64")

# Weightless layers whose float output has no useful gradient with respect to
# their input (bucket and hash ids): their output is an entry, like a lookup's.
_STEPS = (
    keras.layers.Discretization,
    keras.layers.Hashing,
    keras.layers.HashedCrossing,
    keras.layers.StringLookup,
    keras.layers.IntegerLookup,
    keras.layers.TextVectorization,
    keras.layers.CategoryEncoding,
)


def _is_float(tensor) -> bool:
    return str(tensor.dtype) in _FLOATS


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tensor where attributions start.

    `column` is the raw input (or `input[i]` for one column of a matrix
    input, `a_X_b` for a feature cross) that the attribution is credited
    to; `split` marks an entry that *is* a raw (batch, k) input, whose last
    axis is k columns; `tokens` marks a (batch, tokens, dim) embedding
    sequence, explained token by token, with `ids` the token-id tensor and
    `vocabulary` the words those ids stand for.
    """

    tensor: object
    column: str
    split: bool = False
    tokens: bool = False
    ids: object = None
    vocabulary: tuple = ()


@dataclasses.dataclass(frozen=True)
class Cut:
    """The model cut at its entries: `core` runs the entries and the fixed tensors to the
    outputs; `prefix_tensors` (entries, fixed tensors, then the token ids of text entries) are
    what the raw inputs are run to."""

    entries: tuple
    fixed: tuple
    core: keras.Model

    @property
    def prefix_tensors(self) -> list:
        return [e.tensor for e in self.entries] + list(self.fixed) + [e.ids for e in self.entries if e.tokens]

    @property
    def columns(self) -> list[str]:
        names = []
        for e in self.entries:
            if e.split:
                names += [f"{e.column}[{i}]" for i in range(e.tensor.shape[-1])]
            else:
                names.append(e.column)
        return list(dict.fromkeys(names))


def _is_step(op) -> bool:
    return isinstance(op, _STEPS)


def _sources(tensor, memo: dict) -> frozenset:
    """The names of the model inputs a tensor depends on."""
    key = id(tensor)
    if key not in memo:
        op, node = producer(tensor)
        if isinstance(op, keras.layers.InputLayer):
            memo[key] = frozenset([tensor.name])
        else:
            memo[key] = frozenset().union(*(_sources(t, memo) for t in node.input_tensors))
    return memo[key]


def _vocabulary(ids) -> tuple:
    """The words behind a token-id tensor made by a `TextVectorization` or `StringLookup`, if so."""
    op, _ = producer(ids)
    if isinstance(op, (keras.layers.TextVectorization, keras.layers.StringLookup)):
        return tuple(str(w) for w in op.get_vocabulary())
    return ()


def cut(model: keras.Model) -> Cut:
    """Finds every entry of `model` and builds the two halves that meet there.

    Example:
    >>> import keras_mtl as mtl
    >>> x = {"age": keras.Input((1,), name="age"), "city": keras.Input((1,), dtype="string", name="city")}
    >>> onehot = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot")(x["city"])
    >>> trunk = lambda x: keras.layers.Dense(4)(keras.layers.Concatenate()([x["age"], onehot]))
    >>> m = mtl.models.shared_bottom(x, [mtl.tasks.Binary("y")], trunk=trunk)
    >>> cut(m).columns
    ['age', 'city']
    """
    memo: dict = {}
    entries: dict[int, Entry] = {}
    fixed: dict[int, object] = {}
    def entry_of(tensor) -> Entry | None:
        if not _is_float(tensor):
            return None
        op, node = producer(tensor)
        inputs = node.input_tensors
        is_input = isinstance(op, keras.layers.InputLayer)
        if not (is_input or _is_step(op) or not any(_is_float(t) for t in inputs)):
            return None
        sources = sorted(_sources(tensor, memo))
        column = sources[0] if len(sources) == 1 else "_X_".join(sources)
        shape = tuple(tensor.shape)
        if is_input:
            return Entry(tensor, column, split=len(shape) == 2 and (shape[1] or 1) > 1)
        if len(shape) == 3 and shape[1] != 1 and len(inputs) == 1 and not _is_float(inputs[0]):
            # An embedding of a token sequence: (batch, tokens) ids -> (batch, tokens, dim);
            # one id's embedding, (batch, 1, dim), is a single value, not a sequence.
            return Entry(tensor, column, tokens=True, ids=inputs[0], vocabulary=_vocabulary(inputs[0]))
        return Entry(tensor, column)

    def stop(tensor) -> bool:
        entry = entry_of(tensor)
        if entry is not None:
            entries[id(tensor)] = entry
            return True
        if not _is_float(tensor):
            fixed[id(tensor)] = tensor
            return True
        return False

    walk_back(model.outputs, stop)
    ordered = tuple(sorted(entries.values(), key=lambda e: e.column))
    held = tuple(fixed.values())
    # A list, not a dict: these are inner tensors named by Keras (see `_encoding.Split`).
    starts = [e.tensor for e in ordered] + list(held)
    core = keras.Model(starts[0] if len(starts) == 1 else starts, model.output, name=f"{model.name}_from_entries")
    return Cut(ordered, held, core)


def named_inputs(model: keras.Model) -> dict:
    """`{name: KerasTensor}` of the model's inputs: what a model fed dicts of columns is built on."""
    return {t.name: t for t in keras.tree.flatten(model.inputs)}


__all__ = ["Cut", "Entry", "cut", "named_inputs"]
