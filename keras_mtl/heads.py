"""Output layers for tasks: an optional per-task tower and one output layer named after the task."""

from __future__ import annotations

from typing import Sequence

import keras


def dense_head(
    features: keras.KerasTensor,
    name: str,
    units: int,
    activation: str,
    tower: Sequence[int] = (),
) -> keras.KerasTensor:
    """Adds `tower` Dense+ReLU layers and a Dense output layer called `name`.

    Works on pooled features (batch, d) and on per-token features
    (batch, T, d) alike, since Dense acts on the last axis. Outputs are float32
    so that mixed-precision trunks still give float32 losses and serving outputs.

    Example:
    >>> x = keras.Input((8,))
    >>> dense_head(x, "income", 1, "sigmoid", tower=[4]).shape
    (None, 1)
    """
    h = features
    for i, width in enumerate(tower):
        h = keras.layers.Dense(width, activation="relu", name=f"{name}_tower_{i}")(h)
    return keras.layers.Dense(units, activation=activation, name=name, dtype="float32")(h)
