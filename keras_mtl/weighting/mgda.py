"""MGDA: multiple-gradient descent towards a Pareto-stationary point (Sener & Koltun, NeurIPS 2018)."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.weighting.base import GradientWeighting
from keras_mtl.weighting.solvers import min_norm_weights

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


@keras.saving.register_keras_serializable(package="keras_mtl")
class MGDA(GradientWeighting):
    """Updates along the min-norm point of the convex hull of the task gradients.

    With `mode="representation"` the gradients are taken on the shared
    representation: this is MGDA-UB, the paper's upper-bound variant, with one
    backward pass through the trunk. `normalization` rescales each gradient
    first, as in the paper's code: "l2" by its norm, "loss" by its loss,
    "loss+" by loss x norm.

    Example:
    >>> m = MGDA(); m.task_names = ["a", "b"]
    >>> K = tf.constant([[1.0, -1.0], [-1.0, 2.0]])  # g1=(1,0), g2=(-1,1)
    >>> [round(float(w), 4) for w in m.aggregate(K, tf.constant([1.0, 1.0]), True)]
    [0.6, 0.4]
    """

    key = "mgda"

    def __init__(self, mode: str = "parameters", normalization: str = "none", **kwargs):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"MGDA: normalization must be one of {list(NORMALIZATIONS)}, got {normalization!r}.")
        super().__init__(mode=mode, **kwargs)
        self.normalization = normalization

    def aggregate(self, gram, losses, training):
        norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 1e-20))
        scale = {
            "none": tf.ones_like(norms),
            "l2": norms,
            "loss": tf.maximum(losses, 1e-12),
            "loss+": tf.maximum(losses, 1e-12) * norms,
        }[self.normalization]
        scaled = gram / (scale[:, None] * scale[None, :])
        return min_norm_weights(scaled) / scale

    def get_config(self):
        return {**super().get_config(), "normalization": self.normalization}
