"""Which experts each gate of a MoE model weighs, and its logged weights as a gate × expert table."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_mtl import _compat
from keras_mtl.layers.experts import Experts
from keras_mtl.layers.gate import Gate
from keras_mtl.layers.mixture import MixExperts


@dataclasses.dataclass
class GateTable:
    """One level of gates: `weights[g, e]` is the mean weight gate `gates[g]` gives expert `experts[e]`.

    Columns are every expert of the level (shared first, then each task's);
    a gate that does not see an expert gives it 0, so every row sums to 1.
    `name` is the level's shared experts layer (`shared_experts`,
    `shared_experts_1` for PLE level 1).
    """

    name: str
    gates: list[str]
    experts: list[str]
    weights: np.ndarray


def _source(tensor):
    """The Experts or Gate layer behind a tensor, looking through pass-through layers (Identity)."""
    layer = _compat.keras_history(tensor).operation
    while not isinstance(layer, (Experts, Gate)):
        tensor = _compat.inbound_node(layer).arguments.keras_tensors[0]
        layer = _compat.keras_history(tensor).operation
    return layer


def gate_layout(model: keras.Model) -> dict[str, list[tuple[str, int]]]:
    """`{gate name: [(experts layer name, number of experts), ...]}` in the order the gate weighs them.

    Read off the graph: every `MixExperts` layer takes one gate's weights and
    the expert outputs those weights apply to. Empty for models without gates.

    Example:
    >>> import keras_mtl as mtl
    >>> m = mtl.models.cgc(keras.Input((3,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")],
    ...                    num_experts=2, num_task_experts=1, expert_units=[4])
    >>> gate_layout(m)["a_gate"]
    [('shared_experts', 2), ('a_experts', 1)]
    """
    layout = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layout.update(gate_layout(layer))
        elif isinstance(layer, MixExperts):
            weights, experts = _compat.inbound_node(layer).arguments.args[:2]
            layout[_source(weights).name] = [(e.name, e.num_experts) for e in map(_source, experts)]
    return layout


def gate_tables(layout: dict[str, list[tuple[str, int]]], logs: dict) -> list[GateTable]:
    """The gate × expert mean weights in `logs` (keys `<gate>/expert_<i>`), one table per level.

    Gates whose first experts are the same shared experts form a level.
    Gates missing from `logs` (e.g. `gate_metrics=False`) are left out.

    Example:
    >>> layout = {"a_gate": [("shared_experts", 2)], "b_gate": [("shared_experts", 2)]}
    >>> logs = {"a_gate/expert_0": 0.9, "a_gate/expert_1": 0.1, "b_gate/expert_0": 0.3, "b_gate/expert_1": 0.7}
    >>> t = gate_tables(layout, logs)[0]
    >>> t.gates, t.experts, t.weights.tolist()
    (['a_gate', 'b_gate'], ['shared_experts/0', 'shared_experts/1'], [[0.9, 0.1], [0.3, 0.7]])
    """
    levels: dict[str, dict[str, list]] = {}
    for gate, parts in layout.items():
        if f"{gate}/expert_0" not in logs:
            continue
        level = levels.setdefault(parts[0][0], {})
        level[gate] = parts
    tables = []
    for name, gates in levels.items():
        columns: list[str] = []
        for parts in gates.values():
            for experts, count in parts:
                for i in range(count):
                    if f"{experts}/{i}" not in columns:
                        columns.append(f"{experts}/{i}")
        weights = np.zeros((len(gates), len(columns)))
        for row, (gate, parts) in enumerate(gates.items()):
            cells = [f"{experts}/{i}" for experts, count in parts for i in range(count)]
            for k, cell in enumerate(cells):
                weights[row, columns.index(cell)] = float(logs[f"{gate}/expert_{k}"])
        tables.append(GateTable(name, list(gates), columns, weights))
    return tables
