"""A mixture of registered datasets (`keras_mtl.data.datasets`), each labelling some tasks: what a run config's
`data.sources` builds.

Each source is loaded with its loader, keeps the labels it is asked for,
and becomes an unbatched, shuffled `(features, labels)` dataset; `mixture()`
draws the training stream from them and `concatenate()` gives validation
and test, every example once. The sources must take the same inputs (the
model has one set): e.g. `trump_tweets` and `newsgroups`, both raw text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from keras_mtl.data import datasets
from keras_mtl.data import sampling as sampling_lib
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.data.mixing import concatenate, mixture
from keras_mtl.data.text import text_vectorizer
from keras_mtl.tasks import Task


def _source(name: str, spec: Mapping, **load) -> tuple[MultiTaskData, list[str]]:
    """The loaded dataset of one source, and the label keys it contributes."""
    dataset = spec.get("dataset")
    if dataset not in datasets.available():
        raise ValueError(f"Source {name!r}: unknown dataset {dataset!r}; available: {datasets.available()}.")
    data = datasets.get(dataset)(**{**load, **({"limit": spec["limit"]} if spec.get("limit") else {})})
    have = [t.label for t in data.tasks]
    labels = list(spec.get("tasks") or have)
    unknown = [k for k in labels if k not in have]
    if unknown:
        raise ValueError(f"Source {name!r} ({dataset}) has no label(s) {unknown}; its labels are {have}.")
    return data, labels


def _examples(data: MultiTaskData, split: str, labels: Sequence[str], shuffle_seed: int | None):
    """One split of a loaded dataset as an unbatched `(features, labels)` dataset, only `labels` kept."""
    features, all_labels = data.columns[split]
    ds = tf.data.Dataset.from_tensor_slices((dict(features), {k: all_labels[k] for k in labels}))
    if shuffle_seed is not None:
        n = len(all_labels[labels[0]])
        ds = ds.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds


def _shared_vectorizer(loaded: Mapping[str, MultiTaskData]):
    """A TextVectorization adapted on every text source's train split (one vocabulary for all)."""
    vectorizers = [d.vectorizer for d in loaded.values() if d.vectorizer is not None]
    if not vectorizers:
        return None
    if len(vectorizers) == 1:
        return vectorizers[0]
    configs = [v.get_config() for v in vectorizers]
    texts = np.concatenate([d.columns["train"][0]["text"] for d in loaded.values()])
    return text_vectorizer(
        texts,
        max_tokens=max(c["max_tokens"] for c in configs),
        sequence_length=max(c["output_sequence_length"] for c in configs),
    )


def bundled_mixture(
    sources: Mapping[str, Mapping],
    tasks: Sequence[Task] | None = None,
    *,
    sampling: str | sampling_lib.Sampler | Mapping[str, float] = "proportional",
    batch_size: int = 32,
    validation_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
    examples_per_epoch: int | None = None,
    epochs: int | None = None,
) -> MultiTaskData:
    """Mixes bundled datasets that label different tasks into one `MultiTaskData`.

    Args:
        sources: `{name: {"dataset": loader name, "tasks": [label keys],
            "limit": rows}}`; `tasks` defaults to all the dataset's labels,
            `limit` to the `limit` argument.
        tasks: the model's tasks; default every task some source labels,
            with the dataset's defaults (e.g. `device` is 4-class).
        sampling, examples_per_epoch, epochs: as in `keras_mtl.data.mixture`.
        batch_size, validation_fraction, limit, seed: passed to each loader.

    Returns:
        `MultiTaskData` whose `train` is the mixture (fresh draws every
        pass) and `validation`/`test` every example of every source once.
        Text sources share one vectoriser adapted on all their training
        texts; tabular sources use the first one's feature space.
        `sample()` gives test rows of every source.

    Example:
    >>> data = bundled_mixture({"tweets": {"dataset": "trump_tweets", "tasks": ["device"], "limit": 300},
    ...                         "news": {"dataset": "newsgroups", "tasks": ["coarse"], "limit": 300}},
    ...                        sampling="uniform", batch_size=32)
    >>> [t.name for t in data.tasks], sorted(next(iter(data.train))[1])
    (['device', 'coarse'], ['coarse', 'device'])
    """
    if not sources:
        raise ValueError("A mixture needs at least one source.")
    load = {"batch_size": batch_size, "validation_fraction": validation_fraction, "limit": limit, "seed": seed}
    loaded, labels = {}, {}
    for name, spec in sources.items():
        loaded[name], labels[name] = _source(name, spec, **load)
    first, *rest = loaded
    inputs = loaded[first].inputs
    for name in rest:
        if sorted(loaded[name].inputs) != sorted(inputs):
            raise ValueError(
                f"Sources {first!r} and {name!r} take different inputs ({sorted(inputs)} vs "
                f"{sorted(loaded[name].inputs)}); the sources of a mixture feed one model, so they "
                "need the same inputs (e.g. trump_tweets and newsgroups: raw text)."
            )
    if tasks is None:
        by_name = {}
        for name, data in loaded.items():
            for t in data.tasks:
                if t.label in labels[name]:
                    by_name.setdefault(t.name, t)
        tasks = list(by_name.values())

    def split(name: str, shuffle: bool) -> dict:
        return {
            source: _examples(data, name, labels[source], seed if shuffle else None)
            for source, data in loaded.items()
        }

    sample_features = {
        k: np.concatenate([d.columns["test"][0][k] for d in loaded.values()]) for k in inputs
    }
    return MultiTaskData(
        name="mixture",
        inputs=inputs,
        tasks=list(tasks),
        train=mixture(
            split("train", shuffle=True), tasks, sampling=sampling, batch_size=batch_size, seed=seed,
            inputs=inputs, examples_per_epoch=examples_per_epoch, epochs=epochs,
        ),
        validation=concatenate(split("validation", shuffle=False), tasks, batch_size=batch_size, inputs=inputs),
        test=concatenate(split("test", shuffle=False), tasks, batch_size=batch_size, inputs=inputs),
        feature_space=loaded[first].feature_space,
        # Raw test features only, for sample() (export warmup and checks); the
        # datasets above are not rebuilt from columns.
        columns={"test": (sample_features, {})},
        vectorizer=_shared_vectorizer(loaded),
    )
