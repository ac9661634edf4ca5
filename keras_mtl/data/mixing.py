"""Mixtures of datasets that label different tasks: one batched stream, missing labels marked.

Sentiment comes from one corpus and topic from another; clicks are on every
row and purchases on few. `mixture()` draws each example from one source by
a sampling strategy and gives it a label for every task, the task's missing
marker (-1, or NaN for float labels) where its source has none, so
`MultiTaskModel` leaves it out of that task's loss and metrics.

**Sources are unbatched** (one example per element): the mixture draws a
source per example, so every batch mixes sources in the sampled proportions
(batch-level mixing would give each batch one source's tasks only, and the
gradient of a task would jump from batch to batch). A batched source is
refused with a message to `.unbatch()` it; batches are always full
(`drop_remainder`), which keeps shapes static for `tf.distribute`.

**Epoch.** An epoch of a mixture is `examples_per_epoch` examples (default:
the sum of the source sizes, as many as one pass over every source), rounded
up to whole batches: `steps_per_epoch = ceil(examples_per_epoch / batch_size)`
full batches. Which source the i-th example of the stream comes from is drawn
from the sampler's distribution at epoch `i // (steps_per_epoch * batch_size)`.
Sources are repeated as needed, so a small source drawn often repeats within
an epoch (shuffle your sources: the adapters here do, every pass).

**With `fit`.** The dataset holds `epochs * steps_per_epoch` batches.

* Samplers that do not change over epochs (proportional, uniform,
  temperature, weights): `epochs=1` (the default) and `model.fit(mix,
  epochs=E)`. Every pass over the dataset is one epoch with fresh draws.
* `Annealed(epochs=E)`: the dataset spans all E epochs (its `epochs`
  default), so that each epoch uses its own distribution; fit with
  `model.fit(mix, epochs=E, steps_per_epoch=len(mix) // E)`, which makes
  Keras read one dataset pass across the E epochs.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from keras_mtl.data import sampling as sampling_lib
from keras_mtl.data import sources as sources_lib
from keras_mtl.data.pipeline import pipeline_options
from keras_mtl.tasks import Task, check_unique

# Choices are drawn this many at a time: one vectorised op per block instead
# of one per example.
_BLOCK = 1024


def mixture(
    sources: Mapping[str, tf.data.Dataset],
    tasks: Sequence[Task],
    *,
    sampling: str | sampling_lib.Sampler | Mapping[str, float] = "proportional",
    batch_size: int = 32,
    seed: int | None = None,
    inputs: Any = None,
    defaults: Mapping[str, Any] | None = None,
    sizes: Mapping[str, int] | None = None,
    examples_per_epoch: int | None = None,
    epochs: int | None = None,
) -> tf.data.Dataset:
    """Mixes sources that label different tasks into one batched stream for `model.fit`.

    Args:
        sources: `{name: dataset}`; each dataset is unbatched and yields
            `(features, labels)` or `(features, labels, sample_weights)`
            with `labels` keyed by task label key (a subset of the tasks).
        tasks: every task of the model (e.g. `model.tasks`).
        sampling: "proportional", "uniform", "temperature" (T=2), a
            `keras_mtl.data.sampling` object (e.g. `Annealed(epochs=5)`,
            `Temperature(3)`) or a dict `{source: weight}`.
        batch_size: examples per batch; every batch is full.
        seed: seed of the source draws (each pass draws anew,
            deterministically for a given seed); None uses the global seed.
        inputs: the model's inputs (`model`, `model.input` or
            `data.inputs`). Without it every source must carry the same
            features (or `defaults` for the ones some lack). With it the
            stream carries exactly the model's inputs: other features are
            dropped, and a source lacking an input needs a default.
        defaults: `{feature: value}` for a feature some sources lack.
        sizes: `{source: number of examples}` for sources whose size is
            unknown or infinite (otherwise read from their cardinality, or
            counted in one pass).
        examples_per_epoch: examples per epoch; default the sum of sizes.
        epochs: epochs in one pass of the dataset; default 1, or the
            sampler's own `epochs` for samplers that change over epochs.

    Returns:
        A `tf.data.Dataset` of `(features, labels)` batches, with a label for
        every task (plus `sample_weights`, a dict keyed by task name, when a
        source has sample weights), of `epochs * steps_per_epoch` batches.

    Example:
    >>> import keras_mtl as mtl
    >>> sentiment = tf.data.Dataset.from_tensor_slices(({"x": [[1.0], [2.0]]}, {"sentiment": [0, 1]}))
    >>> topic = tf.data.Dataset.from_tensor_slices(({"x": [[3.0], [4.0]]}, {"topic": [2, 0]}))
    >>> tasks = [mtl.tasks.Binary("sentiment"), mtl.tasks.Multiclass("topic", 3)]
    >>> mix = mixture({"reviews": sentiment, "news": topic}, tasks, batch_size=4, seed=0)
    >>> x, y = next(iter(mix))
    >>> sorted(y), len(mix)  # every task has labels; 4 examples per epoch, in 1 batch
    (['sentiment', 'topic'], 1)
    >>> bool(tf.reduce_all((y["sentiment"] == -1) != (y["topic"] == -1)))  # each row: one task labelled
    True
    """
    tasks = check_unique(tasks)
    sources = sources_lib.check_sources(sources)
    sampler = sampling_lib.get(sampling)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    sizes = dict(sizes or {})
    unknown = sorted(set(sizes) - set(sources))
    if unknown:
        raise ValueError(f"sizes names unknown source(s) {unknown}; sources: {list(sources)}.")
    parts = {name: sources_lib.parts(name, ds) for name, ds in sources.items()}
    plan = sources_lib.plan(parts, tasks, inputs=inputs, defaults=defaults)
    counts = {name: sources_lib.source_size(name, ds, sizes.get(name)) for name, ds in sources.items()}

    if epochs is None:
        epochs = getattr(sampler, "epochs", 1) if sampler.varies_by_epoch else 1
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}.")
    if examples_per_epoch is None:
        examples_per_epoch = sum(counts.values())
    if int(examples_per_epoch) != examples_per_epoch or examples_per_epoch < 1:
        raise ValueError(f"examples_per_epoch must be an integer >= 1, got {examples_per_epoch!r}.")
    steps = math.ceil(examples_per_epoch / batch_size)
    # One row of probabilities per epoch, or a single row if they never change.
    table = sampler.schedule(counts, int(epochs) if sampler.varies_by_epoch else 1)

    choices = choice_stream(table, steps * batch_size, int(epochs) * steps * batch_size, seed)
    conformed = [
        sources_lib.conform(ds, parts[name], plan).repeat() for name, ds in sources.items()
    ]
    mixed = tf.data.Dataset.choose_from_datasets(conformed, choices)
    mixed = mixed.batch(int(batch_size), drop_remainder=True)
    mixed = mixed.apply(tf.data.experimental.assert_cardinality(int(epochs) * steps))
    return mixed.prefetch(2).with_options(pipeline_options())


def concatenate(
    sources: Mapping[str, tf.data.Dataset],
    tasks: Sequence[Task],
    *,
    batch_size: int = 32,
    inputs: Any = None,
    defaults: Mapping[str, Any] | None = None,
) -> tf.data.Dataset:
    """Every example of every source exactly once, in order, batched: for validation and test.

    Labels are completed as in `mixture()`: a task a source does not label
    gets its missing marker, so `evaluate` scores each task on the sources
    that label it.

    Example:
    >>> import keras_mtl as mtl
    >>> a = tf.data.Dataset.from_tensor_slices(({"x": [1.0, 2.0]}, {"a": [0, 1]}))
    >>> b = tf.data.Dataset.from_tensor_slices(({"x": [3.0]}, {"b": [0.5]}))
    >>> ds = concatenate({"a": a, "b": b}, [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")], batch_size=8)
    >>> x, y = next(iter(ds))
    >>> y["a"].numpy().tolist(), y["b"].numpy().tolist()
    ([0, 1, -1], [nan, nan, 0.5])
    """
    tasks = check_unique(tasks)
    sources = sources_lib.check_sources(sources)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    parts = {name: sources_lib.parts(name, ds) for name, ds in sources.items()}
    plan = sources_lib.plan(parts, tasks, inputs=inputs, defaults=defaults)
    datasets = [sources_lib.conform(ds, parts[name], plan) for name, ds in sources.items()]
    out = datasets[0]
    for ds in datasets[1:]:
        out = out.concatenate(ds)
    return out.batch(int(batch_size)).prefetch(2).with_options(pipeline_options())


def choice_stream(
    table: np.ndarray, per_epoch: int, total: int, seed: int | None = None
) -> tf.data.Dataset:
    """`total` source indices (int64); index i is drawn from row `min(i // per_epoch, rows - 1)` of `table`.

    Each block of choices takes its randomness from one element of
    `tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`, so a new
    pass over the stream draws anew, the same way in every run for a given
    seed, with no Python generator in the pipeline.

    Example:
    >>> picks = choice_stream(np.array([[0.0, 1.0], [1.0, 0.0]]), per_epoch=3, total=6, seed=0)
    >>> [int(c) for c in picks]
    [1, 1, 1, 0, 0, 0]
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
        raise ValueError(f"table must have shape (epochs, sources), got {table.shape}.")
    cdf = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0  # no round-off gap above the last source
    cdf = tf.constant(cdf, tf.float64)
    rows, num_sources = table.shape

    def pick(index, random):
        u = tf.random.stateless_uniform(
            tf.shape(index), seed=tf.stack([random, index[0]]), dtype=tf.float64
        )
        row = tf.minimum(index // per_epoch, rows - 1)
        # The source is the number of cumulative probabilities at or below u.
        chosen = tf.reduce_sum(tf.cast(u[:, None] >= tf.gather(cdf, row), tf.int64), axis=1)
        return tf.minimum(chosen, num_sources - 1)

    indices = tf.data.Dataset.range(int(total)).batch(_BLOCK)
    randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(indices, randoms).map(pick).unbatch()
