"""`TaskAffinity`: lookahead inter-task affinity (Fifty et al., 2021) on a probe batch, averaged over the run."""

from __future__ import annotations

import json
import os

import numpy as np

from keras_mtl import diagnostics
from keras_mtl.callbacks._probe import Probe


class TaskAffinity(Probe):
    """Every `every_n_steps` steps: lookahead inter-task affinity on a probe batch, averaged over the run.

    A check is one probe call (`diagnostics.traced_probe` with its
    lookahead: T trial forward passes after the probe's own); the weights
    are never written.

    Tags `affinity/<i>__to__<j>` and the image `affinity/matrix`; at the end of
    training `<log_dir>/mtl/affinity.json` holds the mean matrix, the task
    names and suggested groupings for every number of groups.

    Example:
    >>> import tempfile
    >>> cb = TaskAffinity(tempfile.mkdtemp(), probe=(np.ones((2, 3)), {"a": np.ones(2)}))
    >>> cb.learning_rate
    0.1
    """

    def __init__(self, log_dir: str, probe, every_n_steps: int = 200, learning_rate: float = 0.1):
        if not learning_rate > 0:
            raise ValueError(f"TaskAffinity needs learning_rate > 0, got {learning_rate}.")
        super().__init__(log_dir, probe, every_n_steps)
        self.learning_rate = float(learning_rate)
        self._sum = None
        self._count = 0

    def check(self, step: int) -> np.ndarray:
        """Measures affinity now, logs it at `step`, and returns the running mean."""
        a = np.asarray(diagnostics.affinity(self.probe(self.learning_rate)), dtype=np.float64)
        self._sum = a if self._sum is None else self._sum + a
        self._count += 1
        names = self.task_names
        for i, src in enumerate(names):
            for j, dst in enumerate(names):
                if i != j:
                    self.writer.scalar(f"affinity/{src}__to__{dst}", a[i, j], step)
        scale = max(np.abs(self.mean).max(), 1e-12)
        self.writer.image("affinity/matrix", diagnostics.heatmap_image(self.mean, -scale, scale), step)
        return self.mean

    @property
    def mean(self) -> np.ndarray:
        if self._sum is None:
            raise ValueError("No affinity measured yet.")
        return self._sum / self._count

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self._count == 0:
            return
        names = self.task_names
        result = {
            "tasks": names,
            "affinity": self.mean.tolist(),
            "measurements": self._count,
            "groupings": {
                str(k): diagnostics.suggest_groups(self.mean, names, k) for k in range(1, len(names) + 1)
            },
        }
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(self.log_dir, "affinity.json"), "w") as f:
            json.dump(result, f, indent=2)


__all__ = ["TaskAffinity"]
