"""The structure every bundled dataset loader returns."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class MultiTaskData:
    """A multi-task dataset ready for `model.fit`.

    Attributes:
        name: short name (used for log and export directories).
        inputs: the Keras inputs of the model (raw features).
        tasks: the tasks this dataset labels, with sensible defaults.
        train, validation, test: batched `tf.data.Dataset`s of
            `(features, labels)`, labels keyed by task label key.
        feature_space: the adapted `keras.utils.FeatureSpace` for tabular data.
        columns: `{split: (features, labels)}` numpy columns behind each split.
        vectorizer: for text data, the `keras.layers.TextVectorization`
            adapted on the train split (`keras_mtl.trunks.text(data.vectorizer)`
            puts it inside the model, so the model takes raw strings).
        column_types: for a user's table (`from_dataframe`, `read`), how each
            feature column is read (`keras_mtl.data.columns.ColumnType`).
        batch_size, seed: how the datasets were batched and shuffled.
        streamed: the datasets read files batch by batch (`read(stream=True)`);
            `columns` then hold the sample that types and statistics came from.
    """

    name: str
    inputs: Any
    tasks: list
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    feature_space: Any = None
    columns: dict = dataclasses.field(default_factory=dict, repr=False)
    vectorizer: Any = None
    column_types: dict = dataclasses.field(default_factory=dict, repr=False)
    batch_size: int | None = None
    seed: int = 0
    streamed: bool = False

    @classmethod
    def from_splits(
        cls, name: str, inputs, tasks: list, columns: dict, *, batch_size: int, seed: int, **extra
    ) -> "MultiTaskData":
        """Builds the batched train/validation/test datasets from `{split: (features, labels)}` columns.

        Only "train" is shuffled (every epoch), by whole groups when a task
        ranks within groups (`shuffle_group`); `extra` sets the optional fields.
        Every split is checked against `tasks` first (see
        `keras_mtl.data.checks`): labels of the right shape, class ids in
        range, no NaN/inf other than the missing marker, no NaN/inf in float
        features, and some labels for every task in "train".

        Example:
        >>> cols = {s: ({"x": np.arange(4.0)}, {"y": np.arange(4.0)}) for s in ("train", "validation", "test")}
        >>> len(MultiTaskData.from_splits("d", None, [], cols, batch_size=2, seed=0).train)
        2
        """
        from keras_mtl.data.checks import check_columns
        from keras_mtl.data.splits import batched_splits

        for split, (features, labels) in columns.items():
            check_columns(features, labels, tasks, f"split {split!r}", require_labels=split == "train")
        datasets = _checked(batched_splits(columns, batch_size, seed, shuffle_group(tasks)), tasks)
        return cls(
            name=name,
            inputs=inputs,
            tasks=tasks,
            train=datasets["train"],
            validation=datasets["validation"],
            test=datasets["test"],
            columns=columns,
            batch_size=batch_size,
            seed=seed,
            **extra,
        )

    def encoded(self, model) -> "MultiTaskData":
        """A copy whose train/validation/test datasets carry `model`'s encoded features.

        The model's preprocessing (`model.preprocessing`: lookups,
        normalisation, tokenisation) runs once over each split's columns
        instead of on every batch of every epoch, and the training step left
        is numeric, so it can be XLA-compiled. The model accepts these
        encoded batches as well as raw ones and learns the same weights;
        batches and shuffling are the same as in the raw datasets. Columns
        and `sample()` stay raw, for export and serving checks. A model
        with no string preprocessing gets `self` back.

        Example:
        >>> import keras, keras_mtl as mtl
        >>> data = mtl.data.census_income(limit=300, batch_size=64)
        >>> model = mtl.models.shared_bottom(data.inputs, data.tasks, trunk=mtl.trunks.tabular(data.feature_space, [8]))
        >>> fast = data.encoded(model)
        >>> sorted(fast.train.element_spec[0]) == sorted(model.preprocessing.names)
        True
        """
        from keras_mtl.data.splits import batched_splits
        from keras_mtl._encoding import encode_columns

        split = model.preprocessing
        if split is None:
            return self
        if self.batch_size is None:
            raise ValueError(
                f"Dataset {self.name!r} was not built by MultiTaskData.from_splits; "
                "encoded() needs its batch size."
            )
        if self.streamed:
            # Files read batch by batch: the encoder runs in the input pipeline.
            from keras_mtl._encoding import encode_batches

            return dataclasses.replace(
                self, **{s: encode_batches(split.encoder, getattr(self, s)) for s in ("train", "validation", "test")}
            )
        columns = {
            name: (encode_columns(split.encoder, features), labels)
            for name, (features, labels) in self.columns.items()
        }
        # The raw columns were checked when this data was built (`from_splits`).
        datasets = batched_splits(columns, self.batch_size, self.seed, shuffle_group(self.tasks))
        return dataclasses.replace(self, **_checked(datasets, self.tasks))

    def keep_labels(self, fractions: dict, *, tasks: list | None = None, seed: int | None = None) -> "MultiTaskData":
        """A copy whose training split keeps `fractions[task]` of that task's labels; the others become missing.

        The label-scarce setting multi-task learning exists for: a task
        labelled on few rows, trained beside tasks labelled on all of them.
        The rows that keep their labels are drawn with `seed` (default: the
        dataset's); validation and test keep every label, so scores stay
        comparable with the fully labelled run. `fractions` is keyed by task
        name, of `tasks` (default: the dataset's own).

        Example:
        >>> cols = {s: ({"x": np.arange(10.0)}, {"y": np.ones(10)}) for s in ("train", "validation", "test")}
        >>> import keras_mtl as mtl
        >>> data = MultiTaskData.from_splits("d", None, [mtl.tasks.Binary("y")], cols, batch_size=5, seed=0)
        >>> int(np.isfinite(data.keep_labels({"y": 0.3}).columns["train"][1]["y"]).sum())
        3
        """
        if self.streamed or "train" not in self.columns:
            raise ValueError(
                f"keep_labels needs the training rows in memory; dataset {self.name!r} "
                f"{'streams its files' if self.streamed else 'has no train columns'}."
            )
        by_name = {t.name: t for t in (self.tasks if tasks is None else tasks)}
        features, labels = self.columns["train"]
        labels = dict(labels)
        rng = np.random.default_rng(self.seed if seed is None else seed)
        for name, fraction in fractions.items():
            if name not in by_name:
                raise ValueError(f"keep_labels: no task {name!r}; the tasks are {sorted(by_name)}.")
            if not 0.0 < float(fraction) <= 1.0:
                raise ValueError(f"keep_labels: the fraction of task {name!r} must be in (0, 1], got {fraction}.")
            task = by_name[name]
            y = np.array(labels[task.label], copy=True)
            if not np.issubdtype(y.dtype, np.floating) and task.missing_class_id is None:
                y = y.astype(np.float32)  # NaN marks a missing label; only floats hold it
            drop = rng.permutation(len(y))[int(round(float(fraction) * len(y))):]
            y[drop] = np.nan if np.issubdtype(y.dtype, np.floating) else task.missing_class_id
            labels[task.label] = y
        columns = {**self.columns, "train": (features, labels)}
        return MultiTaskData.from_splits(
            self.name, self.inputs, self.tasks, columns, batch_size=self.batch_size, seed=self.seed,
            feature_space=self.feature_space, vectorizer=self.vectorizer, column_types=self.column_types,
        )

    def sample(self, n: int = 8, split: str = "test") -> dict[str, np.ndarray]:
        """The first `n` rows of a split's raw features, shaped as a serving client sends them.

        One-value-per-example columns come back with shape (n,), which is what
        the exported `serving_default` signature takes.

        Example:
        >>> data = MultiTaskData("d", None, [], None, None, None, columns={"test": ({"x": np.arange(4)}, {})})
        >>> data.sample(2)["x"].tolist()
        [0, 1]
        """
        if split not in self.columns:
            raise KeyError(f"No split {split!r}; have {sorted(self.columns)}.")
        features, _ = self.columns[split]
        return {
            k: v[:n].reshape(-1) if v.ndim == 2 and v.shape[1] == 1 else v[:n]
            for k, v in features.items()
        }


def _checked(datasets: dict, tasks: list) -> dict:
    """Marks datasets built from columns already checked against `tasks` (see `keras_mtl.data.batch_checks`)."""
    from keras_mtl.data.batch_checks import mark_checked

    return {name: mark_checked(ds, tasks) for name, ds in datasets.items()}


def shuffle_group(tasks) -> str | None:
    """The group key training batches keep together: the first Ranking task's, else None.

    A ranking loss compares the examples of a group within a batch; rows
    shuffled one by one would scatter each group over many batches.

    Example:
    >>> import keras_mtl as mtl
    >>> shuffle_group([mtl.tasks.Binary("click"), mtl.tasks.Ranking("relevance", group="query")])
    'query'
    """
    return next((t.group for t in tasks or () if t.group is not None), None)
