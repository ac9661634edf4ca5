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

    @classmethod
    def from_splits(
        cls, name: str, inputs, tasks: list, columns: dict, *, batch_size: int, seed: int, **extra
    ) -> "MultiTaskData":
        """Builds the batched train/validation/test datasets from `{split: (features, labels)}` columns.

        Only "train" is shuffled (every epoch); `extra` sets the optional fields.

        Example:
        >>> cols = {s: ({"x": np.arange(4.0)}, {"y": np.arange(4.0)}) for s in ("train", "validation", "test")}
        >>> len(MultiTaskData.from_splits("d", None, [], cols, batch_size=2, seed=0).train)
        2
        """
        from keras_mtl.data.splits import batched_splits

        datasets = batched_splits(columns, batch_size, seed)
        return cls(
            name=name,
            inputs=inputs,
            tasks=tasks,
            train=datasets["train"],
            validation=datasets["validation"],
            test=datasets["test"],
            columns=columns,
            **extra,
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
