"""`ExpertUtilisation`: which experts each gate of a MoE model uses, each epoch, as a heatmap and JSON."""

from __future__ import annotations

import json
import os

from keras_mtl import diagnostics
from keras_mtl.callbacks._writer import MTLWriter
from keras_mtl.layers.gate_usage import gate_layout, gate_tables


class ExpertUtilisation(MTLWriter):
    """Each epoch: which experts each gate of a MoE model uses, as a gate × expert heatmap.

    Reads the mean gate weights that the gates already log in the training
    step (`<gate>/expert_<i>`), so it costs no extra pass. Writes the image
    `experts/utilisation` (PLE: `experts/utilisation_<level>`; rows are
    gates, columns every expert of the level, white 0 to red 1; a gate gives
    the experts it does not see 0, so rows sum to 1) and
    `<log_dir>/mtl/experts.json` with the same tables for `keras-mtl report`.
    Does nothing for a model without gates.

    Example:
    >>> import tempfile
    >>> ExpertUtilisation(tempfile.mkdtemp()).log_dir.endswith("mtl")
    True
    """

    def on_train_begin(self, logs=None):
        self._layout = gate_layout(self.model)

    def on_epoch_end(self, epoch, logs=None):
        tables = gate_tables(self._layout, logs or {}) if self._layout else []
        if not tables:
            return
        for table in tables:
            level = table.name[len("shared_experts"):]
            # Weights lie in [0, 1]: on the -1..1 scale 0 is white and 1 red.
            self.writer.image(f"experts/utilisation{level}", diagnostics.heatmap_image(table.weights), epoch)
        result = {
            "epoch": epoch,
            "levels": [
                {"name": t.name, "gates": t.gates, "experts": t.experts, "weights": t.weights.tolist()}
                for t in tables
            ],
        }
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(self.log_dir, "experts.json"), "w") as f:
            json.dump(result, f, indent=2)


__all__ = ["ExpertUtilisation"]
