"""`steps_per_execution="auto"`: how many steps one call of the compiled step function runs.

Keras calls its compiled step once per batch from Python, and on a small
model that call (the fit loop, the iterator, the callbacks) costs more than
the step's own ops (benchmarks/RESULTS.md, "Per-step cost"). Running several
steps per call (`compile(steps_per_execution=N)`, a `tf.while_loop` over the
iterator) removes that cost; what it changes is when callbacks see batches:
their batch hooks run once per execution, with the last step's logs. So
`"auto"` runs `AUTO_STEPS` steps per call only when no callback of the call
counts batches, and never more steps than divide a given step count (Keras
runs whole executions: `steps_per_epoch=10` with 32 steps per execution would
train 32 steps an epoch).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import keras

from keras_mtl import _compat

AUTO_STEPS = 32

# The batch hooks each kind of call runs (fit runs its validation's too).
_HOOKS = {
    "train": ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end"),
    "test": ("on_test_batch_begin", "on_test_batch_end"),
    "predict": ("on_predict_batch_begin", "on_predict_batch_end"),
}


def auto_steps(callbacks: Iterable | None, step_counts: Sequence[int | None], kinds: Sequence[str]) -> int:
    """The steps per execution `"auto"` resolves to for one `fit`, `evaluate` or `predict` call.

    `callbacks` are the call's callbacks; `step_counts` the step counts it
    was given (`steps_per_epoch`, `validation_steps`, `steps`; `None` when
    not given); `kinds` the calls whose batch hooks run (`"train"`,
    `"test"`, `"predict"`). 1 if a callback counts batches.

    Example:
    >>> auto_steps([keras.callbacks.EarlyStopping()], [None], ["train", "test"])
    32
    >>> auto_steps([keras.callbacks.TerminateOnNaN()], [None], ["train", "test"])
    1
    >>> auto_steps([], [10], ["train"])
    10
    >>> auto_steps([keras.callbacks.LambdaCallback(on_train_batch_end=print)], [None], ["train"])
    1
    """
    if any(counts_batches(c, kinds) for c in _flat(callbacks)):
        return 1
    given = [int(n) for n in step_counts if n is not None]
    if not given:
        return AUTO_STEPS
    common = math.gcd(*given)
    return max(d for d in range(1, min(AUTO_STEPS, common) + 1) if common % d == 0)


def counts_batches(callback: keras.callbacks.Callback, kinds: Sequence[str] = ("train", "test", "predict")) -> bool:
    """Whether `callback` acts on batches of the given kinds of call, so needs one step per execution.

    Keras' own History and progress bar, and checkpoints and TensorBoard
    that write once per epoch, do not. Any other callback that overrides a
    batch hook does: `StopOnNonFiniteLoss` and `TerminateOnNaN` among them,
    since with several steps per execution they would see only the last
    step's losses (by then a NaN of one task has spread to every task).

    Example:
    >>> counts_batches(keras.callbacks.ModelCheckpoint("m.keras")), counts_batches(keras.callbacks.ModelCheckpoint("m.keras", save_freq=100))
    (False, True)
    """
    callbacks = keras.callbacks
    if isinstance(callback, (callbacks.History, callbacks.ProgbarLogger)):
        return False
    if isinstance(callback, callbacks.TensorBoard):
        return (
            callback.update_freq != "epoch"
            or bool(callback.write_steps_per_second)
            or _compat.tensorboard_profiles(callback)
        )
    if isinstance(callback, (callbacks.ModelCheckpoint, callbacks.BackupAndRestore)) and callback.save_freq == "epoch":
        return False
    hooks = [h for kind in kinds for h in _HOOKS[kind]]
    base = keras.callbacks.Callback
    # A LambdaCallback sets the hooks it is given on the instance.
    return any(h in vars(callback) or getattr(type(callback), h) is not getattr(base, h) for h in hooks)


def _flat(callbacks) -> list:
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return list(callbacks.callbacks)
    return list(callbacks)
