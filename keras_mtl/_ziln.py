"""Zero-inflated lognormal (ZILN) loss, expected value and metrics (Wang, Liu and Miao, 2019).

Customer lifetime value and spend are 0 for most examples and heavy-tailed
otherwise; a squared error on them is dominated by the few largest values.
ZILN models a value as "is it positive?" (a logit) times a lognormal
(mu, sigma) for the positive ones. The task's output holds the three
parameters; the value served is the expectation, p * exp(mu + sigma^2 / 2).
"""

from __future__ import annotations

import math

import keras
from keras import ops

_MIN_SCALE = math.sqrt(1e-7)


def parameters(y_pred):
    """`(p, mu, sigma)` from the three raw outputs (logit, mu, softplus-scale)."""
    y_pred = ops.cast(y_pred, "float32")
    p = ops.sigmoid(y_pred[..., 0])
    sigma = ops.maximum(ops.softplus(y_pred[..., 2]), _MIN_SCALE)
    return p, y_pred[..., 1], sigma


def expected_value(y_pred):
    """E[value] = p * exp(mu + sigma^2 / 2), one per example.

    Example:
    >>> import numpy as np
    >>> y_pred = np.array([[0.0, 1.0, np.log(np.e - 1)]], "float32")   # p = 0.5, mu = 1, sigma = 1
    >>> round(float(expected_value(y_pred)[0]), 4)                    # 0.5 * e^1.5
    2.2408
    """
    p, mu, sigma = parameters(y_pred)
    return p * ops.exp(mu + 0.5 * ops.square(sigma))


@keras.saving.register_keras_serializable(package="keras_mtl")
def ziln_loss(y_true, y_pred):
    """Per example: the cross-entropy of "value > 0" plus, for positive values, the lognormal's
    negative log-likelihood of the value.

    Example:
    >>> import numpy as np
    >>> y_pred = np.array([[0.0, 0.0, np.log(np.e - 1)]], "float32")   # p = 0.5, mu = 0, sigma = 1
    >>> [round(float(v), 4) for v in ziln_loss(np.array([0.0, 1.0], "float32"), np.repeat(y_pred, 2, 0))]
    [0.6931, 1.6121]
    """
    y = ops.cast(y_true, "float32")
    positive = ops.cast(y > 0, "float32")
    classification = ops.binary_crossentropy(positive, ops.cast(y_pred, "float32")[..., 0], from_logits=True)
    _, mu, sigma = parameters(y_pred)
    log_y = ops.log(ops.where(y > 0, y, ops.ones_like(y)))  # any value where y = 0: it is multiplied by 0
    nll = log_y + ops.log(sigma) + 0.5 * math.log(2 * math.pi) + ops.square(log_y - mu) / (2 * ops.square(sigma))
    return classification + positive * nll


@keras.saving.register_keras_serializable(package="keras_mtl")
def ziln_mae(y_true, y_pred):
    """|value - expected value|, per example."""
    return ops.abs(ops.cast(y_true, "float32") - expected_value(y_pred))


@keras.saving.register_keras_serializable(package="keras_mtl")
class ZILNPositiveAUC(keras.metrics.AUC):
    """The AUC of p (the probability of a positive value) against "value > 0"."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        positive = ops.cast(ops.cast(y_true, "float32") > 0, "float32")
        return super().update_state(positive, parameters(y_pred)[0], sample_weight)
