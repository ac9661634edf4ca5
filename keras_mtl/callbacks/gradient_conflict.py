"""`GradientConflict`: task gradient norms and pairwise cosines on a probe batch, every N steps."""

from __future__ import annotations

import numpy as np

from keras_mtl import diagnostics
from keras_mtl.callbacks._probe import Probe


class GradientConflict(Probe):
    """Every `every_n_steps` training steps: task gradient norms and pairwise cosines on a probe batch.

    Tags: `<task>/grad_norm`, `conflict/cosine/<a>__<b>`, `conflict/share`
    (fraction of checks so far where some pair had cosine < 0) and the image
    `conflict/cosine_matrix` (blue -1, white 0, red +1).

    Args:
        log_dir: the run's log directory (written to `<log_dir>/mtl`).
        probe: a batch `(x, y[, sample_weight])` or a dataset whose first batch is used.
        every_n_steps: how often to probe.

    Example:
    >>> import tempfile
    >>> cb = GradientConflict(tempfile.mkdtemp(), probe=(np.ones((2, 3)), {"a": np.ones(2)}), every_n_steps=50)
    >>> cb.every_n_steps
    50
    """

    def __init__(self, log_dir: str, probe, every_n_steps: int = 100):
        super().__init__(log_dir, probe, every_n_steps)
        self._checks = 0
        self._conflicts = 0

    def check(self, step: int) -> np.ndarray:
        """Probes now and writes the results at `step`; returns the cosine matrix."""
        grads = self.probe().gradients
        cos = diagnostics.cosine_matrix(grads)
        norms = np.linalg.norm(np.asarray(grads, dtype=np.float64), axis=1)
        names = self.task_names
        self._checks += 1
        self._conflicts += int(any(cos[i, j] < 0 for i, j in diagnostics.pairs(names)))
        for name, norm in zip(names, norms):
            self.writer.scalar(f"{name}/grad_norm", norm, step)
        for i, j in diagnostics.pairs(names):
            self.writer.scalar(f"conflict/cosine/{names[i]}__{names[j]}", cos[i, j], step)
        self.writer.scalar("conflict/share", self._conflicts / self._checks, step)
        self.writer.image("conflict/cosine_matrix", diagnostics.heatmap_image(cos), step)
        return cos


__all__ = ["GradientConflict"]
