"""Which log keys are training-time statistics (gate statistics, penalties), not scores."""

from __future__ import annotations

import keras


def training_only_log_names(model: keras.Model) -> set[str]:
    """Log keys of the layer metrics that only training steps update.

    Gate statistics and the soft-sharing penalty are measured in training
    forward passes; `evaluate` reports them as 0. Use this set to leave
    them out of test results.

    Example:
    >>> from keras_mtl.layers import Gate
    >>> x = keras.Input((3,))
    >>> sorted(training_only_log_names(keras.Model(x, Gate(2, name="g")(x))))
    ['g/entropy', 'g/expert_0', 'g/expert_1']
    """
    names: set[str] = set()
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            names |= training_only_log_names(layer)
            continue
        # Layers with such metrics (Gate, SoftSharingPenalty) list their keys.
        names.update(getattr(layer, "training_log_names", ()))
    return names
