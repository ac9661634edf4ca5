"""The text vectoriser the bundled text datasets adapt on their train split."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np


def text_vectorizer(
    texts: Sequence[str] | np.ndarray,
    *,
    max_tokens: int = 20000,
    sequence_length: int = 64,
    name: str = "text_vectorizer",
) -> keras.layers.TextVectorization:
    """A `TextVectorization` (lower-case, no punctuation, word tokens) adapted on `texts`.

    It runs on core TensorFlow ops only, so a model holding it (through
    `keras_mtl.trunks.text`) exports a graph that takes raw strings and loads
    in TF Serving. Adapt it on the train split only, so that validation and
    test words the training data never had go to the out-of-vocabulary id 1.

    Args:
        texts: the training texts.
        max_tokens: vocabulary size, padding (0) and OOV (1) included.
        sequence_length: token ids per text (padded or cut).
        name: layer name.

    Example:
    >>> vec = text_vectorizer(["the cat sat", "the dog"], sequence_length=4)
    >>> vec(["the bird"]).numpy().tolist()  # "the" is the most frequent word; "bird" is unknown
    [[2, 1, 0, 0]]
    """
    texts = np.asarray(texts, dtype=object)
    if texts.ndim != 1 or len(texts) == 0:
        raise ValueError(f"text_vectorizer needs a non-empty 1-D list of texts, got shape {texts.shape}.")
    layer = keras.layers.TextVectorization(
        max_tokens=max_tokens,
        output_mode="int",
        output_sequence_length=sequence_length,
        name=name,
    )
    layer.adapt(texts.astype(str))
    return layer
