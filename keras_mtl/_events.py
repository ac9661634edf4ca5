"""TensorBoard event files written from numpy values, without running TensorFlow ops.

The monitoring callbacks write a few scalars and small images every N
steps and every epoch. `tf.summary.scalar` runs eager ops for each value,
which made up a large share of a gradient-conflict check; building the
same summary protos with TensorBoard's own helpers and appending them to
an event file with TensorBoard's `EventFileWriter` (the writer PyTorch's
`SummaryWriter` uses) costs a fraction of that (benchmarks/RESULTS.md,
"Monitoring"). The files hold the same records `tf.summary` writes
(tensor summaries with the scalars and images plugins' metadata), so
TensorBoard, its `EventAccumulator` and `keras-mtl report` read them alike.
"""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import PIL.Image
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util


class EventWriter:
    """Appends scalars and images to one event file in `log_dir`, created at the first write.

    Example:
    >>> import tempfile
    >>> from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    >>> log_dir = tempfile.mkdtemp()
    >>> writer = EventWriter(log_dir)
    >>> writer.scalar("a/loss", 0.5, step=3)
    >>> writer.image("a/matrix", np.zeros((1, 4, 4, 3), np.uint8), step=3)
    >>> writer.close()
    >>> events = EventAccumulator(log_dir); _ = events.Reload()
    >>> sorted(events.Tags()["tensors"]), events.Tensors("a/loss")[0].step
    (['a/loss', 'a/matrix'], 3)
    """

    def __init__(self, log_dir: str):
        self.log_dir = str(log_dir)
        self._file = None

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Writes `value` (a number) as scalar `tag` at `step`."""
        self._write(scalar_summary.scalar_pb(tag, np.float32(value)), step)

    def image(self, tag: str, pixels: np.ndarray, step: int) -> None:
        """Writes a `(1, height, width, 3)` (or `(height, width, 3)`) uint8 image as PNG under `tag` at `step`."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 4:
            if pixels.shape[0] != 1:
                raise ValueError(f"EventWriter.image writes one image, got a batch of shape {pixels.shape} for {tag!r}.")
            pixels = pixels[0]
        if pixels.ndim != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"EventWriter.image needs (height, width, channels) uint8 pixels for {tag!r}, "
                             f"got shape {pixels.shape} and dtype {pixels.dtype}.")
        png = io.BytesIO()
        PIL.Image.fromarray(pixels).save(png, format="PNG")
        summary = summary_pb2.Summary()
        # As tf.summary.image stores it: [width, height, PNG bytes].
        content = [str(pixels.shape[1]).encode(), str(pixels.shape[0]).encode(), png.getvalue()]
        summary.value.add(
            tag=tag,
            metadata=image_metadata.create_summary_metadata(display_name=None, description=None),
            tensor=tensor_util.make_tensor_proto(content),
        )
        self._write(summary, step)

    def flush(self) -> None:
        """Writes everything written so far to disk."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flushes and closes the file (and its writer thread); a later write starts a new file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, summary: summary_pb2.Summary, step: int) -> None:
        if self._file is None:
            self._file = EventFileWriter(self.log_dir)
        self._file.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))


class ScalarSummaries:
    """The scalar part of the `tf.summary` module's API, written with `EventWriter`s.

    What Keras' `TensorBoard` callback calls when it logs scalars per epoch
    (`create_file_writer`, a writer's `as_default()` and `close()`, and
    `scalar(name, data, step)`); `keras_mtl.callbacks.LeanTensorBoard` gives it
    to Keras in place of `tf.summary` then. It writes the same records.

    Example:
    >>> import tempfile
    >>> summary = ScalarSummaries()
    >>> writer = summary.create_file_writer(tempfile.mkdtemp())
    >>> with writer.as_default():
    ...     summary.scalar("epoch_loss", 0.25, step=0)
    >>> writer.close()
    """

    def __init__(self):
        self._default: EventWriter | None = None

    def create_file_writer(self, log_dir: str) -> "_DefaultableWriter":
        return _DefaultableWriter(self, log_dir)

    def scalar(self, name: str, data, step) -> None:
        if self._default is None:
            raise RuntimeError(f"No default writer for scalar {name!r}: write inside `writer.as_default()`.")
        # `step` may be a variable (an optimizer's iteration count).
        self._default.scalar(name, float(np.asarray(data)), int(np.asarray(step)))


class _DefaultableWriter(EventWriter):
    def __init__(self, summaries: ScalarSummaries, log_dir: str):
        super().__init__(log_dir)
        self._summaries = summaries

    @contextlib.contextmanager
    def as_default(self, step=None):
        previous, self._summaries._default = self._summaries._default, self
        try:
            yield self
        finally:
            self._summaries._default = previous
