"""`explain`: which raw input columns drive each task's output, example by example."""

from __future__ import annotations

import collections.abc
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_mtl._encoding import encode_columns
from keras_mtl.explanations import _graph
from keras_mtl.explanations._graph import named_inputs
from keras_mtl.explanations._attribute import METHODS, attribution_function, call, path_nodes
from keras_mtl.explanations.experts import expert_usage
from keras_mtl.explanations.explanation import Explanation, TokenAttributions
from keras_mtl.export import samples as samples_lib
from keras_mtl.export import signatures
from keras_mtl.tasks import Regression

# Examples x quadrature nodes per forward pass.
_ROWS_PER_PASS = 8192


class ExplainError(ValueError):
    """A request `explain` cannot serve: a task, method, target or input the model lacks."""


def _tasks(model, tasks) -> list:
    known = {t.name: t for t in getattr(model, "tasks", [])}
    if not known:
        raise ExplainError(f"explain needs a keras_mtl model (one with .tasks); got {type(model).__name__}.")
    if tasks is None:
        return list(known.values())
    if isinstance(tasks, str):
        tasks = [tasks]
    picked = []
    for name in tasks:
        if name not in known:
            raise ExplainError(f"explain: the model has no task {name!r}; its tasks are {list(known)}.")
        picked.append(known[name])
    return picked


def _raw_columns(model, data) -> dict[str, np.ndarray]:
    """`data` as one array per model input, shaped like the Keras input; errors name the input and row."""
    specs = signatures.input_specs(model)
    if isinstance(data, tf.data.Dataset):
        parts: dict[str, list] = {}
        for batch in data.as_numpy_iterator():
            features = batch[0] if isinstance(batch, tuple) else batch
            if not isinstance(features, collections.abc.Mapping):
                features = {next(iter(specs)): features}
            for k, v in features.items():
                parts.setdefault(k, []).append(v)
        data = {k: np.concatenate(v) for k, v in parts.items()}
    elif isinstance(data, np.ndarray):
        if len(specs) != 1:
            raise ExplainError(f"explain: an array feeds one input, but the model has inputs {list(specs)}; pass a dict.")
        data = {next(iter(specs)): data}
    arrays = samples_lib.serving_inputs(specs, data, ignore_unknown=True)
    shapes = {t.name: t.shape for t in keras.tree.flatten(model.inputs)}
    out = {}
    for name, column in arrays.items():
        if column.ndim == len(shapes[name]) - 1:
            column = column[..., None]
        out[name] = column
    return out


class _Prepared:
    """What `explain` builds once per model: the cut, its prefix as a dict model (so
    `encode_columns` runs it in large traced batches), and one traced attribution
    function per (tasks, method, steps)."""

    def __init__(self, model):
        self.cut = _graph.cut(model)
        outputs = self.cut.prefix_tensors
        self.keys = [f"t{i:03d}" for i in range(len(outputs))]
        self.prefix = keras.Model(named_inputs(model), dict(zip(self.keys, outputs)))
        self.functions: dict = {}
        self.forward = None

    def run_prefix(self, columns) -> list[np.ndarray]:
        values = encode_columns(self.prefix, columns)
        return [values[k] for k in self.keys]

    def outputs(self, values: list, chunk: int = _ROWS_PER_PASS) -> dict:
        """The model's outputs from its entry and fixed values, in chunks, traced once."""
        if self.forward is None:
            specs = [tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in keras.tree.flatten(self.cut.core.inputs)]
            self.forward = tf.function(lambda tensors: call(self.cut.core, tensors), input_signature=[specs])
        parts = [self.forward([tf.constant(v[i : i + chunk]) for v in values]) for i in range(0, len(values[0]), chunk)]
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    def function(self, tasks: list, method: str, steps: int):
        key = (tuple(tasks), method, steps)
        if key not in self.functions:
            self.functions[key] = attribution_function(
                self.cut.core, [e.tensor for e in self.cut.entries], self.cut.fixed, tasks, *path_nodes(method, steps)
            )
        return self.functions[key]


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepared(model) -> _Prepared:
    if model not in _PREPARED:
        _PREPARED[model] = _Prepared(model)
    return _PREPARED[model]


def _baselines(cut, entries, reference, baseline) -> list[np.ndarray]:
    """One baseline row per entry: the reference data's mean (numbers, one-hot blocks, id
    embeddings), zeros for token sequences; `baseline="zeros"` makes every entry zeros."""
    rows = []
    for entry, x, ref in zip(cut.entries, entries, reference):
        if baseline == "zeros" or entry.tokens:
            rows.append(np.zeros(x.shape[1:], x.dtype))
        else:
            rows.append(ref.astype("float64").mean(0).astype(x.dtype))
    return rows


def _targets(task, units: int, predicted, given, n: int) -> np.ndarray:
    """The output unit explained per example: `given`, the only one, or the predicted class."""
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or not 0 <= given < units:
            raise ExplainError(
                f"explain: targets[{task.name!r}] must be an output unit 0..{units - 1}; got {given!r}."
            )
        return np.full(n, given, "int32")
    if units == 1:
        return np.zeros(n, "int32")
    if isinstance(task, Regression):
        raise ExplainError(
            f"explain: task {task.name!r} predicts {units} values; name the one to explain, "
            f"e.g. targets={{{task.name!r}: 0}}."
        )
    return predicted.reshape(n, units).argmax(1).astype("int32")  # the predicted class (or most likely label)


def _reduce(cut, credits: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    """Per-entry credits summed to (examples, columns), plus each token entry's (examples, tokens)."""
    columns = cut.columns
    total = np.zeros((len(credits[0]), len(columns)))
    per_token = {}
    for entry, c in zip(cut.entries, credits):
        c = c.astype("float64")
        if entry.split:
            for i in range(c.shape[1]):
                total[:, columns.index(f"{entry.column}[{i}]")] += c[:, i]
            continue
        if entry.tokens:
            tokens = c.sum(-1)
            per_token[entry.column] = per_token.get(entry.column, 0) + tokens
            c = tokens
        total[:, columns.index(entry.column)] += c.reshape(len(c), -1).sum(1)
    return total, per_token


def explain(
    model: keras.Model,
    data,
    tasks=None,
    method: str = "integrated_gradients",
    *,
    steps: int = 64,
    baseline=None,
    targets: dict | None = None,
    batch_size: int | None = None,
    experts: bool = True,
) -> Explanation:
    """Per-task attributions of `model`'s outputs to its raw input columns, for every row of `data`.

    Attributions start where gradients can enter (`keras_mtl.explanations._graph`):
    a numeric input itself, a one-hot block, an id's embedding, each token's
    embedding. They are summed back to the raw column they came from, so a
    census table is explained by `education` and `age`, not by one-hot slots.

    Baselines (what an input is compared with), per kind of entry: the mean
    over `baseline` rows (default: `data` itself) for numbers, one-hot
    blocks and id embeddings, the "average row"; zeros for a text's token
    embeddings (no token). `baseline="zeros"` puts every entry at zero.

    Args:
        model: a keras_mtl model.
        data: a DataFrame, a dict of columns, an array (one-input models) or
            a `tf.data.Dataset` of feature dicts or `(features, labels)`.
        tasks: the task names to explain (default: all).
        method: `"integrated_gradients"` (default) or `"gradient_x_input"`.
        steps: quadrature nodes of integrated gradients per example.
        baseline: None, `"zeros"`, or rows (as `data`) whose mean is the baseline.
        targets: `{task: unit}` the output unit to explain for tasks with
            several (default: the predicted class; required for a
            multi-value Regression).
        batch_size: examples per forward pass (default: 8192 // steps).
        experts: add gate weights and expert similarity for MoE models.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Regression("y")],
    ...                              trunk=mtl.trunks.mlp([4], activation="tanh"))
    >>> e = explain(m, {"x": np.random.default_rng(0).normal(size=(16, 2)).astype("float32")})
    >>> e.columns, e.attributions["y"].shape, e.completeness_gap()["y"] < 1e-4
    (['x[0]', 'x[1]'], (16, 2), True)
    """
    if method not in METHODS:
        raise ExplainError(f"explain: unknown method {method!r}; choose one of {list(METHODS)}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ExplainError(f"explain: steps must be a positive integer; got {steps!r}.")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ExplainError(f"explain: batch_size must be a positive integer; got {batch_size!r}.")
    picked = _tasks(model, tasks)
    for task in picked:
        if len(model.output[task.name].shape) > 2:
            raise ExplainError(
                f"explain: task {task.name!r} ({type(task).__name__}) gives an output per token; "
                "explain covers tasks with one output per example."
            )
    unknown = sorted(set(targets or {}) - {t.name for t in picked})
    if unknown:
        raise ExplainError(f"explain: targets names {unknown}, not among the tasks explained {[t.name for t in picked]}.")
    if isinstance(baseline, str) and baseline != "zeros":
        raise ExplainError(f"explain: baseline must be None, 'zeros' or rows of data; got {baseline!r}.")
    columns = _raw_columns(model, data)
    prepared = _prepared(model)
    cut = prepared.cut
    values = prepared.run_prefix(columns)
    k, f = len(cut.entries), len(cut.fixed)
    # In the dtype the graph declares: a lookup's one-hot block can come out int64 at run time.
    entries = [v.astype(e.tensor.dtype) for v, e in zip(values[:k], cut.entries)]
    fixed = [v.astype(t.dtype) for v, t in zip(values[k : k + f], cut.fixed)]
    token_ids = values[k + f :]
    reference = entries
    if baseline is not None and not isinstance(baseline, str):
        reference = prepared.run_prefix(_raw_columns(model, baseline))[:k]
    base = _baselines(cut, entries, reference, baseline)

    nodes = len(path_nodes(method, steps)[0])
    run = prepared.function([t.name for t in picked], method, steps)
    chunk = batch_size or max(1, _ROWS_PER_PASS // nodes)
    n = len(entries[0])
    credit: dict = {t.name: [[] for _ in entries] for t in picked}
    outputs: dict = {t.name: [] for t in picked}
    at_base: dict = {t.name: [] for t in picked}
    units = {t.name: int(np.prod(model.output[t.name].shape[1:])) for t in picked}
    given = targets or {}
    argmax = [t for t in picked if units[t.name] > 1 and t.name not in given and not isinstance(t, Regression)]
    predicted = prepared.outputs(entries + fixed) if argmax else {}
    chosen = {t.name: _targets(t, units[t.name], predicted.get(t.name), given.get(t.name), n) for t in picked}
    for start in range(0, n, chunk):
        x = [tf.constant(e[start : start + chunk]) for e in entries]
        b = [tf.constant(np.broadcast_to(r, e.shape)) for r, e in zip(base, x)]
        held = [tf.constant(v[start : start + chunk]) for v in fixed]
        unit = {t.name: tf.constant(chosen[t.name][start : start + chunk]) for t in picked}
        result, at_x, at_b = run(x, b, held, unit)
        for t in picked:
            for i, c in enumerate(result[t.name]):
                credit[t.name][i].append(c.numpy())
            outputs[t.name].append(at_x[t.name].numpy())
            at_base[t.name].append(at_b[t.name].numpy())
    attributions, tokens = {}, {}
    for t in picked:
        total, per_token = _reduce(cut, [np.concatenate(c) for c in credit[t.name]])
        attributions[t.name] = total
        for column, values_ in per_token.items():
            tokens.setdefault(column, {})[t.name] = values_
    token_tables = {}
    for entry, ids in zip([e for e in cut.entries if e.tokens], token_ids):
        if entry.column in token_tables:
            continue
        vocabulary = np.asarray(entry.vocabulary or [], dtype=object)
        words = vocabulary[ids] if len(vocabulary) else ids.astype(str)
        words = np.where(ids == 0, "", words)  # id 0 pads a token sequence
        token_tables[entry.column] = TokenAttributions(words, tokens[entry.column])
    return Explanation(
        tasks=[t.name for t in picked],
        columns=cut.columns,
        attributions=attributions,
        outputs={t: np.concatenate(v).astype("float64") for t, v in outputs.items()},
        baseline_outputs={t: np.concatenate(v).astype("float64") for t, v in at_base.items()},
        targets=chosen,
        tokens=token_tables,
        experts=expert_usage(model, columns) if experts else None,
        method=method,
        steps=nodes,
    )
