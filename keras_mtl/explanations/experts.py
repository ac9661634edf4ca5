"""What the experts of a MoE model do on given data: each task gate's weights, and experts that became alike."""

from __future__ import annotations

import dataclasses
import weakref

import keras
import numpy as np

from keras_mtl._encoding import encode_columns
from keras_mtl.explanations._graph import named_inputs
from keras_mtl.layers.gate_usage import GateTable, gate_layout, gate_tables

# Two experts whose outputs have a mean cosine above this on the data compute nearly the same function.
COLLAPSE_COSINE = 0.95


@dataclasses.dataclass
class ExpertUsage:
    """`tables`: one gate x expert table of mean weights per level of gates (rows sum to 1).
    `similarity`: `{experts layer: (E, E) mean cosine between its experts' outputs}`.
    `collapsed`: `[(experts layer, i, j, cosine)]` for the pairs above `COLLAPSE_COSINE`."""

    tables: list
    similarity: dict
    collapsed: list

    def summary(self) -> dict:
        return {
            "levels": [
                {"name": t.name, "gates": t.gates, "experts": t.experts, "weights": np.asarray(t.weights).tolist()}
                for t in self.tables
            ],
            "similarity": {k: v.tolist() for k, v in self.similarity.items()},
            "collapsed": [list(c) for c in self.collapsed],
            "collapse_cosine": COLLAPSE_COSINE,
        }


def _mean_pairwise_cosine(outputs: np.ndarray) -> np.ndarray:
    """(examples, E, d) expert outputs -> (E, E) cosine between experts, averaged over examples."""
    norm = np.linalg.norm(outputs, axis=-1, keepdims=True)
    unit = outputs / np.where(norm > 0, norm, 1.0)
    return np.einsum("bed,bfd->ef", unit, unit) / len(outputs)


# model -> (gate layout, experts layers, a model from the inputs to their outputs), or None without gates.
_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probe(model: keras.Model):
    layout = gate_layout(model)
    top = {layer.name for layer in model.layers}
    # Gates inside a nested model belong to its own graph, which `model.input` does not feed.
    layout = {g: parts for g, parts in layout.items() if g in top and all(e in top for e, _ in parts)}
    if not layout:
        return None
    experts = sorted({e for parts in layout.values() for e, _ in parts})
    outputs = {g: model.get_layer(g).output for g in layout}
    outputs.update({f"experts__{e}": model.get_layer(e).output for e in experts})
    return layout, experts, keras.Model(named_inputs(model), outputs)


def expert_usage(model: keras.Model, columns: dict) -> ExpertUsage | None:
    """Gate weights and expert similarity of `model` on `columns` (raw input arrays); None without gates.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.mmoe(keras.Input((3,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")],
    ...                     num_experts=2, expert_units=[4])
    >>> usage = expert_usage(m, {"x": np.ones((5, 3), "float32")})
    >>> usage.tables[0].gates, usage.tables[0].weights.sum(1).round(4).tolist()
    (['a_gate', 'b_gate'], [1.0, 1.0])
    """
    if model not in _PROBES:
        _PROBES[model] = _probe(model)
    if _PROBES[model] is None:
        return None
    layout, experts, probe = _PROBES[model]
    values = encode_columns(probe, columns)
    logs = {}
    for gate, parts in layout.items():
        mean = values[gate].mean(0)
        logs.update({f"{gate}/expert_{i}": float(w) for i, w in enumerate(mean)})
    tables: list[GateTable] = gate_tables(layout, logs)
    similarity = {e: _mean_pairwise_cosine(values[f"experts__{e}"].astype("float64")) for e in experts}
    collapsed = [
        (e, i, j, float(s[i, j]))
        for e, s in similarity.items()
        for i in range(len(s))
        for j in range(i + 1, len(s))
        if s[i, j] > COLLAPSE_COSINE
    ]
    return ExpertUsage(tables, similarity, collapsed)
