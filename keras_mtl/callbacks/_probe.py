"""The base of the callbacks that probe the model on a fixed batch every N steps, and the probes they share."""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from keras_mtl import diagnostics
from keras_mtl.callbacks._writer import MTLWriter

# model -> {id(raw probe features): (raw features, encoded features)}, while the model lives.
_ENCODED_PROBES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# model -> (key, diagnostics.Probed) of its last probe: at a step where both probes
# are due (every affinity check, at the default frequencies) they share it.
_LAST_PROBE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probe_batch(probe):
    if isinstance(probe, tf.data.Dataset):
        probe = next(iter(probe))
    return keras.utils.unpack_x_y_sample_weight(probe)


class Probe(MTLWriter):
    """Calls the subclass's `check(step)` once every `every_n_steps` training steps, off the training step.

    Steps are counted in `on_train_batch_begin`, and a due check runs before
    the next step starts (or at the end of the epoch): a callback that
    overrides `on_train_batch_end` makes Keras read every step's logs back
    as Python numbers and run callbacks in step with training, a cost paid
    on every step rather than only on probed ones.
    """

    def __init__(self, log_dir: str, probe, every_n_steps: int):
        super().__init__(log_dir)
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}.")
        self.every_n_steps = int(every_n_steps)
        self.x, self.y, self.sample_weight = _probe_batch(probe)
        self._step = 0  # training steps completed
        self._checked = 0  # the step of the last check

    @property
    def inputs(self):
        """The probe's features as the model's probe function should take them.

        Raw features are encoded once by the model's preprocessing front
        (`MultiTaskModel.preprocessing`), so the probe runs and is traced
        through the core only: on census-income that traces several times
        faster, and each call takes half the time. Probes given the
        same batch (as `monitoring` gives them) share one encoding.
        """
        cache = _ENCODED_PROBES.setdefault(self.model, {})
        # The raw batch stays in the cache, so its id is not reused while the entry lives.
        raw, encoded = cache.get(id(self.x), (None, None))
        if raw is not self.x:
            split = getattr(self.model, "preprocessing", None)
            encoded = split.encoder(self.x) if split is not None and not split.accepts(self.x) else self.x
            cache[id(self.x)] = (self.x, encoded)
        return encoded

    def probe(self, lookahead_rate: float | None = None) -> diagnostics.Probed:
        """The model's task gradients and losses on the probe batch at its current weights (`diagnostics.traced_probe`).

        Computed once per optimizer step for every probe callback given the
        same batch: a conflict check reuses the affinity check's call of the
        same step (`monitoring` lists `TaskAffinity` first for that).
        """
        optimizer = getattr(self.model, "optimizer", None)
        step = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer is not None else None
        key = (step, id(self.x), id(self.y), id(self.sample_weight))
        last = _LAST_PROBE.get(self.model)
        if step is not None and last is not None and last[0] == key and lookahead_rate in (None, last[2]):
            return last[1]
        result = diagnostics.traced_probe(self.model)(self.inputs, self.y, self.sample_weight, lookahead_rate)
        _LAST_PROBE[self.model] = (key, result, lookahead_rate)
        return result

    def on_train_batch_begin(self, batch, logs=None):
        self._check_if_due()
        self._step += 1

    def on_epoch_end(self, epoch, logs=None):
        self._check_if_due()

    def _check_if_due(self):
        if self._step and self._step % self.every_n_steps == 0 and self._checked != self._step:
            self._checked = self._step
            self.check(self._step)
            # Each check on disk (0.1 ms): a run killed later keeps what it measured.
            self.writer.flush()


__all__ = ["Probe"]
