"""`Calibration`: a fitted probability map as a layer, so the export serves calibrated probabilities."""

from __future__ import annotations

import keras
from keras import ops

METHODS = ("platt", "isotonic")


@keras.saving.register_keras_serializable(package="keras_mtl")
class Calibration(keras.layers.Layer):
    """Maps a probability through a fitted calibration: Platt scaling or an isotonic map.

    `platt`: sigmoid(a * logit(p) + b). `isotonic`: linear interpolation
    between `knots` + 2 non-decreasing points (x, y) on [0, 1]. The
    parameters are non-trainable weights, set by `keras_mtl.calibration.calibrate`
    and saved with the model.

    Example:
    >>> import numpy as np
    >>> layer = Calibration("platt")
    >>> layer.build((None, 1)); layer.set_weights([np.float32(1.0), np.float32(0.0)])
    >>> [round(float(v), 4) for v in layer(np.array([[0.2], [0.9]], "float32"))[:, 0]]
    [0.2, 0.9]
    """

    def __init__(self, method: str = "platt", knots: int = 64, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ValueError(f"Calibration: method must be one of {list(METHODS)}, got {method!r}.")
        self.method = method
        self.knots = int(knots)

    def build(self, input_shape):
        if self.method == "platt":
            self.a = self.add_weight(shape=(), initializer="ones", trainable=False, name="a")
            self.b = self.add_weight(shape=(), initializer="zeros", trainable=False, name="b")
        else:
            points = self.knots + 2
            self.x = self.add_weight(shape=(points,), initializer="zeros", trainable=False, name="x")
            self.y = self.add_weight(shape=(points,), initializer="zeros", trainable=False, name="y")

    def call(self, p):
        p = ops.cast(p, "float32")
        if self.method == "platt":
            q = ops.clip(p, 1e-7, 1.0 - 1e-7)
            return ops.sigmoid(self.a * (ops.log(q) - ops.log1p(-q)) + self.b)
        flat = ops.reshape(p, (-1,))
        points = self.knots + 2
        right = ops.clip(ops.searchsorted(self.x, flat, side="right"), 1, points - 1)
        x0, x1 = ops.take(self.x, right - 1), ops.take(self.x, right)
        y0, y1 = ops.take(self.y, right - 1), ops.take(self.y, right)
        # Knots padded at x = 1 have no width: the left value holds there.
        t = ops.clip(ops.divide_no_nan(flat - x0, x1 - x0), 0.0, 1.0)
        return ops.reshape(y0 + t * (y1 - y0), ops.shape(p))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "method": self.method, "knots": self.knots}
