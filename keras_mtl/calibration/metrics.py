"""How calibrated probabilities are: ECE as a Keras metric, reliability tables, and per-group AUC."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mtl")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Expected calibration error: sum over equal-width probability bins of (share of the
    examples in the bin) x |observed rate - mean predicted probability| (Naeini et al. 2015).

    0 for perfectly calibrated predictions. Examples of weight 0 (missing
    labels) are left out, as in every keras_mtl metric.

    Example:
    >>> m = ExpectedCalibrationError(num_bins=2)
    >>> m.update_state([0, 1, 1, 1], [0.2, 0.4, 0.8, 0.6])
    >>> round(float(m.result()), 4)   # half the examples each: 0.5 x |0.5 - 0.3| + 0.5 x |1 - 0.7|
    0.25
    """

    def __init__(self, num_bins: int = 15, name: str = "ece", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_bins = int(num_bins)
        self.count = self.add_variable(shape=(self.num_bins,), initializer="zeros", name="count")
        self.confidence = self.add_variable(shape=(self.num_bins,), initializer="zeros", name="confidence")
        self.positives = self.add_variable(shape=(self.num_bins,), initializer="zeros", name="positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = ops.reshape(ops.cast(y_pred, self.dtype), (-1,))
        y = ops.reshape(ops.cast(y_true, self.dtype), (-1,))
        w = ops.ones_like(p) if sample_weight is None else ops.reshape(ops.cast(sample_weight, self.dtype), (-1,))
        bins = ops.clip(ops.cast(ops.floor(p * self.num_bins), "int32"), 0, self.num_bins - 1)
        self.count.assign_add(ops.segment_sum(w, bins, num_segments=self.num_bins))
        self.confidence.assign_add(ops.segment_sum(w * p, bins, num_segments=self.num_bins))
        self.positives.assign_add(ops.segment_sum(w * y, bins, num_segments=self.num_bins))

    def result(self):
        return ops.divide_no_nan(ops.sum(ops.abs(self.positives - self.confidence)), ops.sum(self.count))

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}


def reliability(labels, probabilities, weights=None, num_bins: int = 15) -> dict:
    """The reliability table of binary predictions: per equal-width bin, the mean predicted
    probability, the observed rate and the weight of examples; with ECE and log loss.

    Example:
    >>> r = reliability([0, 1, 1, 1], [0.2, 0.4, 0.8, 0.6], num_bins=2)
    >>> r["ece"], r["rate"], r["confidence"]
    (0.25, [0.5, 1.0], [0.3, 0.7])
    """
    y = np.asarray(labels, "float64").reshape(-1)
    p = np.asarray(probabilities, "float64").reshape(-1)
    w = np.ones_like(p) if weights is None else np.asarray(weights, "float64").reshape(-1)
    bins = np.clip(np.floor(p * num_bins).astype(int), 0, num_bins - 1)
    count = np.bincount(bins, w, num_bins)
    confidence = np.bincount(bins, w * p, num_bins)
    positives = np.bincount(bins, w * y, num_bins)
    q = np.clip(p, 1e-7, 1 - 1e-7)
    total = w.sum()
    filled = count > 0
    return {
        "ece": round(float(np.abs(positives - confidence).sum() / total), 6) if total else 0.0,
        "logloss": float(-(w * (y * np.log(q) + (1 - y) * np.log(1 - q))).sum() / total) if total else 0.0,
        "edges": np.linspace(0, 1, num_bins + 1).round(6).tolist(),
        "confidence": (confidence[filled] / count[filled]).round(6).tolist(),
        "rate": (positives[filled] / count[filled]).round(6).tolist(),
        "count": count[filled].tolist(),
        "bins": np.flatnonzero(filled).tolist(),
    }


def group_auc(labels, scores, groups, weights=None) -> float:
    """GAUC: the AUC within each group (a user), averaged with weights = the group's examples,
    over groups that have both a positive and a negative (others have no AUC).

    Example:
    >>> group_auc([1, 0, 1, 0, 1], [0.9, 0.1, 0.2, 0.8, 0.5], ["u", "u", "v", "v", "w"])
    0.5
    """
    frame = pd.DataFrame({"y": np.asarray(labels, "float64").reshape(-1), "s": np.asarray(scores, "float64").reshape(-1),
                          "g": np.asarray(groups).reshape(-1),
                          "w": 1.0 if weights is None else np.asarray(weights, "float64").reshape(-1)})
    frame = frame[frame["w"] > 0]
    total, weight = 0.0, 0.0
    for _, g in frame.groupby("g", sort=False):
        pos = g["y"] > 0.5
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = g["s"].rank().to_numpy()
        auc = (ranks[pos.to_numpy()].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        total += auc * g["w"].sum()
        weight += g["w"].sum()
    if weight == 0:
        raise ValueError("group_auc: no group has both a positive and a negative example.")
    return float(total / weight)
