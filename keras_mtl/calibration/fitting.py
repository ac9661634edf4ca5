"""Fitting a calibration map on held-out predictions: Platt scaling and isotonic regression (numpy)."""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, "float64"), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def fit_platt(p: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, iterations: int = 100) -> tuple[float, float]:
    """`(a, b)` of Platt scaling, p' = sigmoid(a logit(p) + b), by Newton's method on the log loss.

    The log loss is convex in (a, b): damped Newton steps (with a small
    ridge for separable data) reach its minimum in a few iterations.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> true = rng.uniform(0.05, 0.95, 20000)
    >>> y = (rng.random(20000) < true).astype(float)
    >>> overconfident = 1 / (1 + np.exp(-2 * logit(true)))       # logits doubled
    >>> a, b = fit_platt(overconfident, y)
    >>> round(a, 1), round(b, 1)
    (0.5, 0.0)
    """
    x = logit(p)
    y = np.asarray(y, "float64")
    w = np.ones_like(y) if weights is None else np.asarray(weights, "float64")

    def loss(a, b):
        z = a * x + b  # log(1 + e^z) - y z, computed without overflow
        return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(-np.clip(a * x + b, -500, 500)))
        g = w * (q - y)
        h = w * q * (1 - q)
        grad = np.array([np.sum(g * x), np.sum(g)])
        hess = np.array([[np.sum(h * x * x), np.sum(h * x)], [np.sum(h * x), np.sum(h)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        # Damped: halve the step until the loss falls (a full Newton step can overshoot
        # from a far start, e.g. saturated, overconfident probabilities).
        scale = 1.0
        while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current:
            scale /= 2
        a, b = a - scale * step[0], b - scale * step[1]
        previous, current = current, loss(a, b)
        if previous - current < 1e-12 * max(1.0, abs(current)):
            break
    return float(a), float(b)


def pool_adjacent_violators(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The non-decreasing sequence closest to `y` in weighted squared error (isotonic regression).

    Example:
    >>> pool_adjacent_violators(np.array([1.0, 3.0, 2.0, 4.0])).tolist()
    [1.0, 2.5, 2.5, 4.0]
    """
    y = np.asarray(y, "float64")
    w = np.ones_like(y) if weights is None else np.asarray(weights, "float64")
    values, sizes, totals = [], [], []  # one entry per block: mean, number of items, weight
    for v, wi in zip(y, w):
        values.append(v)
        sizes.append(1)
        totals.append(wi)
        while len(values) > 1 and values[-2] > values[-1]:
            v2, s2, t2 = values.pop(), sizes.pop(), totals.pop()
            t = totals[-1] + t2
            values[-1] = (values[-1] * totals[-1] + v2 * t2) / t if t > 0 else (values[-1] + v2) / 2
            sizes[-1] += s2
            totals[-1] = t
    return np.repeat(values, sizes)


def fit_isotonic(p: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, knots: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """`(x, y)` knots of a non-decreasing piecewise-linear map from a predicted probability to
    the observed rate, from isotonic regression of the labels on the predictions.

    The fitted step function is summarised by at most `knots` points (the
    mean prediction and mean fitted rate of equal-count groups of sorted
    predictions), with 0 -> the lowest rate and 1 -> the highest at the ends;
    between knots the map interpolates linearly, so it stays monotone and
    serves as a few tensor ops.

    Example:
    >>> x, y = fit_isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]), knots=2)
    >>> x.round(2).tolist(), y.round(2).tolist()
    ([0.0, 0.15, 0.35, 1.0], [0.25, 0.25, 0.75, 0.75])
    """
    p = np.asarray(p, "float64")
    w = np.ones_like(p) if weights is None else np.asarray(weights, "float64")
    order = np.argsort(p, kind="stable")
    p, yy, w = p[order], np.asarray(y, "float64")[order], w[order]
    fitted = pool_adjacent_violators(yy, w)
    # Equal-count groups; a group's knot is its weighted mean prediction and fitted rate.
    groups = np.array_split(np.arange(len(p)), min(knots, len(p)))
    xs, ys = [], []
    for g in groups:
        if len(g) == 0:
            continue
        total = w[g].sum()
        xs.append(float(np.average(p[g], weights=w[g])) if total > 0 else float(p[g].mean()))
        ys.append(float(np.average(fitted[g], weights=w[g])) if total > 0 else float(fitted[g].mean()))
    xs, ys = np.array(xs), np.maximum.accumulate(np.array(ys))
    # Merge knots that share a prediction (the map must be a function of it).
    xs, first = np.unique(xs, return_index=True)
    ys = ys[first]
    return np.concatenate([[0.0], xs, [1.0]]), np.concatenate([[ys[0]], ys, [ys[-1]]])
