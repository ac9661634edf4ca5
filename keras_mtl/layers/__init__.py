"""Layers of the sharing architectures, all serializable in `.keras` files with safe_mode on.

`Experts`, `Gate` and `MixExperts` build mixture-of-experts models (MMoE,
CGC, PLE); `CrossStitch` mixes per-task columns; `SoftSharingPenalty` ties
per-task columns with an L2 penalty. `ScaledDense` is a Regression task's
output layer when it predicts in the label's units. `SparseEmbedding` is
the trunks' embedding lookup (reads only the rows of the batch). `GateStatistics` is the gates' metric;
`gate_layout`/`gate_tables` turn its logs into a gate × expert table.
"""

from keras_mtl._heads import ScaledDense
from keras_mtl.layers.cross_stitch import CrossStitch
from keras_mtl.layers.experts import Experts
from keras_mtl.layers.gate import Gate
from keras_mtl.layers.gate_usage import GateTable, gate_layout, gate_tables
from keras_mtl.layers.gate_statistics import GateStatistics
from keras_mtl.layers.information_transfer import InformationTransfer
from keras_mtl.layers.log_names import training_only_log_names
from keras_mtl.layers.mixture import MixExperts
from keras_mtl.layers.soft_sharing import SoftSharingPenalty
from keras_mtl.layers.sparse_embedding import SparseEmbedding

__all__ = [
    "CrossStitch",
    "Experts",
    "Gate",
    "GateStatistics",
    "GateTable",
    "InformationTransfer",
    "MixExperts",
    "ScaledDense",
    "SoftSharingPenalty",
    "SparseEmbedding",
    "gate_layout",
    "gate_tables",
    "training_only_log_names",
]
