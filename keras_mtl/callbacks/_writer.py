"""The base of the callbacks that write keras_mtl's own TensorBoard events, to `<log_dir>/mtl`."""

from __future__ import annotations

import os

import keras

from keras_mtl import _events as events


class MTLWriter(keras.callbacks.Callback):
    """Owns an event file in `<log_dir>/mtl` (one per fit: closed when training ends)."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = os.path.join(str(log_dir), "mtl")
        self.writer = events.EventWriter(self.log_dir)

    def on_train_end(self, logs=None):
        self.writer.close()

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.model.tasks]


__all__ = ["MTLWriter"]
