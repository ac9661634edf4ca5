"""Tabular preprocessing: `keras.utils.FeatureSpace` with a one-pass, in-memory `adapt`,
and feature kinds that `keras_mtl.trunks.tabular` embeds instead of one-hot encoding.

Keras' own kinds (`float_normalized`, `string_categorical`, ...) one-hot
their categories. Id features with 10^5-10^7 values (user id, item id, zip
code), free text and lists of tags need an embedding instead: the kinds
added here (`embedded_categorical`, `hashed`, `text`, `token_list`) make
their preprocessor output integer ids, and `trunks.tabular` puts a
`keras.layers.Embedding` on them (pooled over the tokens of text and
lists). They need `output_mode="dict"`, where each feature keeps its own
output.
"""

from __future__ import annotations

import numbers
import typing

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _compat

# Not exported by Keras; subclassing it is what lets `FeatureSpace` take the
# embedded kinds as ordinary features (its constructor checks isinstance).
_KerasFeature = _compat.FeatureSpaceFeature

# Cap of the default embedding size: beyond it, a 10^6-row table grows by
# megabytes per dimension for little gain in a trunk of a few hundred units.
MAX_DEFAULT_EMBEDDING_DIM = 64


def default_embedding_dim(cardinality: int) -> int:
    """The default embedding size for `cardinality` ids: `min(64, round(6 * cardinality ** 0.25))`.

    The Deep & Cross Network rule (Wang et al., 2017, "Deep & Cross Network
    for Ad Click Predictions", section 4: embeddings of size
    6 x cardinality^(1/4)), capped at `MAX_DEFAULT_EMBEDDING_DIM` = 64.
    `cardinality` counts every id the embedding sees: the vocabulary with its
    OOV slot (and padding, for text and lists), or the hash bins.

    Example:
    >>> default_embedding_dim(10), default_embedding_dim(1000), default_embedding_dim(2**20)
    (11, 34, 64)
    """
    if not _is_int(cardinality) or cardinality < 1:
        raise ValueError(f"default_embedding_dim: cardinality must be an integer >= 1, got {cardinality!r}.")
    return int(min(MAX_DEFAULT_EMBEDDING_DIM, round(6 * cardinality**0.25)))


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _label(kind: str, name: str | None) -> str:
    return f"FeatureSpace.{kind}" + (f" (feature {name!r})" if name else "")


def _check_int(kind: str, name: str | None, arg: str, value, minimum: int, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not _is_int(value) or value < minimum:
        also = " or None" if allow_none else ""
        raise ValueError(f"{_label(kind, name)}: {arg} must be an integer >= {minimum}{also}, got {value!r}.")


def _check_dtype(kind: str, name: str | None, dtype) -> str:
    if dtype not in ("string", "int64"):
        raise ValueError(f"{_label(kind, name)}: dtype must be 'string' or 'int64', got {dtype!r}.")
    return dtype


@keras.saving.register_keras_serializable(package="keras_mtl")
class EmbeddedFeature(_KerasFeature):
    """A FeatureSpace feature whose preprocessor outputs integer ids for an embedding.

    Made by `FeatureSpace.embedded_categorical`, `hashed`, `text` and
    `token_list`. `kind` is the name of the one that made it, `embedding_dim`
    the size asked for (None: `default_embedding_dim(cardinality)`), and
    `pooling` None for one id per example, or "mean"/"sum" over the tokens
    of a text or list (padding left out).

    Example:
    >>> f = FeatureSpace.hashed(num_bins=1000, embedding_dim=8)
    >>> f.kind, f.cardinality, f.output_dim, f.pooling
    ('hashed', 1000, 8, None)
    """

    def __init__(self, dtype, preprocessor, output_mode="int", *, kind, embedding_dim=None, pooling=None):
        super().__init__(dtype, preprocessor, output_mode)
        self.kind = kind
        self.embedding_dim = embedding_dim
        self.pooling = pooling

    @property
    def cardinality(self) -> int:
        """How many distinct ids the preprocessor outputs (known once it is adapted)."""
        layer = self.preprocessor
        if isinstance(layer, keras.layers.Hashing):
            return int(layer.num_bins)
        return int(layer.vocabulary_size())

    @property
    def output_dim(self) -> int:
        """The embedding size: `embedding_dim`, or the default rule on `cardinality`."""
        if self.embedding_dim is not None:
            return int(self.embedding_dim)
        return default_embedding_dim(self.cardinality)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "embedding_dim": self.embedding_dim,
            "pooling": self.pooling,
        }


def _columns(data) -> dict[str, np.ndarray]:
    """Every feature as one numpy array, reading a dataset once."""
    if isinstance(data, typing.Mapping):
        return {k: np.asarray(v) for k, v in data.items()}
    if isinstance(data, tf.data.Dataset):
        parts: dict[str, list] = {}
        for batch in data.as_numpy_iterator():
            if isinstance(batch, tuple):  # (features, labels[, weights])
                batch = batch[0]
            for k, v in batch.items():
                parts.setdefault(k, []).append(v)
        if not parts:
            raise ValueError("adapt() received an empty dataset.")
        return {k: np.concatenate(v) for k, v in parts.items()}
    raise ValueError(
        "adapt() takes a dict of arrays or a tf.data.Dataset of feature dicts; "
        f"got {type(data).__name__}."
    )


@keras.saving.register_keras_serializable(package="keras_mtl")
class FeatureSpace(keras.utils.FeatureSpace):
    """`keras.utils.FeatureSpace` whose `adapt` reads the data once.

    Keras' `FeatureSpace.adapt` re-reads the dataset once per feature, in
    batches of 32 when given arrays (benchmarks/RESULTS.md compares the two
    on census-income's 39 columns). This one gathers each column into memory in a single pass and
    calls each preprocessor's own `adapt` on the whole array, vectorised:
    the same layers, the same vocabularies (same counts, same tie-breaking)
    and the same statistics, so the encoded outputs match Keras' to float
    round-off. Everything else, including `get_inputs()` and
    `get_encoded_features()`, is Keras' own.

    Next to Keras' kinds, `embedded_categorical`, `hashed`, `text` and
    `token_list` make features that `trunks.tabular` embeds (see the module
    docstring); a space holding any of them needs `output_mode="dict"`.

    Example:
    >>> fs = FeatureSpace({"x": "float_normalized", "c": "string_categorical"}, output_mode="concat")
    >>> fs.adapt({"x": np.array([[1.0], [3.0]]), "c": np.array([["a"], ["b"]])})
    >>> fs({"x": np.array([[2.0]]), "c": np.array([["a"]])}).shape
    TensorShape([1, 4])
    """

    def __init__(self, features, output_mode="concat", *args, **kwargs):
        super().__init__(features, output_mode, *args, **kwargs)
        if self.output_mode == "concat":
            for key, feature in self.features.items():
                if isinstance(feature, EmbeddedFeature):
                    raise ValueError(
                        f"FeatureSpace: feature {key!r} is {feature.kind}, which gives ids for an "
                        "embedding (trunks.tabular adds it); use output_mode='dict', since "
                        "output_mode='concat' holds only numeric and one-hot features."
                    )

    @classmethod
    def embedded_categorical(cls, dtype="string", max_tokens=None, embedding_dim=None, name=None):
        """Categories looked up in a vocabulary adapted on the data (one OOV slot, id 0), then embedded.

        For categoricals too large to one-hot (`string_categorical`) yet
        small enough for a vocabulary: 10^3-10^5 values. `dtype` is "string"
        or "int64" (`StringLookup` or `IntegerLookup`); `max_tokens` caps the
        vocabulary (OOV slot included) to the most frequent values.

        Example:
        >>> fs = FeatureSpace({"zip": FeatureSpace.embedded_categorical(embedding_dim=4)}, output_mode="dict")
        >>> fs.adapt({"zip": np.array([["02139"], ["94110"], ["02139"]], dtype=object)})
        >>> fs({"zip": np.array([["02139"], ["10001"]], dtype=object)})["zip"].numpy().ravel().tolist()
        [1, 0]
        """
        kind = "embedded_categorical"
        _check_dtype(kind, name, dtype)
        _check_int(kind, name, "max_tokens", max_tokens, 2, allow_none=True)
        _check_int(kind, name, "embedding_dim", embedding_dim, 1, allow_none=True)
        name = name or f"{kind}_{keras.backend.get_uid(kind)}"
        lookup = keras.layers.StringLookup if dtype == "string" else keras.layers.IntegerLookup
        preprocessor = lookup(max_tokens=max_tokens, num_oov_indices=1, name=f"{name}_preprocessor")
        return EmbeddedFeature(dtype, preprocessor, kind=kind, embedding_dim=embedding_dim)

    @classmethod
    def hashed(cls, num_bins, dtype="string", embedding_dim=None, name=None):
        """Values hashed into `num_bins` ids (`keras.layers.Hashing`), then embedded.

        No vocabulary and nothing to adapt: for id features with 10^6 values
        or more, and for values first seen in serving. Distinct values may
        share a bin (and its embedding row). Keras 3's optimizers (Adam
        included) update every row of the table at every step, not only the
        rows the batch used, so a training step's cost grows with
        `num_bins * embedding_dim`.

        Example:
        >>> fs = FeatureSpace({"user": FeatureSpace.hashed(2**20, dtype="int64")}, output_mode="dict")
        >>> ids = fs({"user": np.array([[7], [123456789]])})["user"]
        >>> bool(np.all((ids.numpy() >= 0) & (ids.numpy() < 2**20)))
        True
        """
        kind = "hashed"
        _check_int(kind, name, "num_bins", num_bins, 2)
        _check_dtype(kind, name, dtype)
        _check_int(kind, name, "embedding_dim", embedding_dim, 1, allow_none=True)
        name = name or f"{kind}_{keras.backend.get_uid(kind)}"
        preprocessor = keras.layers.Hashing(num_bins=int(num_bins), name=f"{name}_preprocessor")
        return EmbeddedFeature(dtype, preprocessor, kind=kind, embedding_dim=embedding_dim)

    @classmethod
    def text(cls, max_tokens=20000, sequence_length=64, embedding_dim=None, name=None):
        """Free text: `TextVectorization` (lowercased, punctuation stripped) to `sequence_length` token ids, embedded and mean-pooled.

        The vocabulary holds the `max_tokens` most frequent words (padding and
        OOV included); longer texts are cut at `sequence_length` tokens. The
        mean leaves padding out, and an empty text pools to zeros.

        Example:
        >>> fs = FeatureSpace({"title": FeatureSpace.text(max_tokens=10, sequence_length=3)}, output_mode="dict")
        >>> fs.adapt({"title": np.array([["The Matrix"], ["the Godfather"]], dtype=object)})
        >>> fs({"title": np.array([["THE matrix!"]], dtype=object)})["title"].shape
        TensorShape([1, 3])
        """
        kind = "text"
        _check_int(kind, name, "max_tokens", max_tokens, 3)
        _check_int(kind, name, "sequence_length", sequence_length, 1)
        _check_int(kind, name, "embedding_dim", embedding_dim, 1, allow_none=True)
        name = name or f"{kind}_{keras.backend.get_uid(kind)}"
        preprocessor = keras.layers.TextVectorization(
            max_tokens=max_tokens,
            output_mode="int",
            output_sequence_length=sequence_length,
            name=f"{name}_preprocessor",
        )
        return EmbeddedFeature("string", preprocessor, kind=kind, embedding_dim=embedding_dim, pooling="mean")

    @classmethod
    def token_list(cls, max_tokens=10000, sequence_length=16, embedding_dim=None, pooling="mean", name=None):
        """A list of values sent as one whitespace-separated string ("sci-fi drama"), embedded and pooled.

        Tokens are taken as they are (no lowercasing or punctuation
        stripping); the vocabulary holds the `max_tokens` most frequent
        (padding and OOV included) and lists are cut at `sequence_length`
        tokens. `pooling` is "mean" or "sum" over the list, padding left
        out; an empty list pools to zeros.

        Example:
        >>> fs = FeatureSpace({"genres": FeatureSpace.token_list(sequence_length=3)}, output_mode="dict")
        >>> fs.adapt({"genres": np.array([["sci-fi drama"], ["drama"]], dtype=object)})
        >>> fs({"genres": np.array([["drama Sci-Fi"]], dtype=object)})["genres"].numpy().tolist()
        [[2, 1, 0]]
        """
        kind = "token_list"
        _check_int(kind, name, "max_tokens", max_tokens, 3)
        _check_int(kind, name, "sequence_length", sequence_length, 1)
        _check_int(kind, name, "embedding_dim", embedding_dim, 1, allow_none=True)
        if pooling not in ("mean", "sum"):
            raise ValueError(f"{_label(kind, name)}: pooling must be 'mean' or 'sum', got {pooling!r}.")
        name = name or f"{kind}_{keras.backend.get_uid(kind)}"
        preprocessor = keras.layers.TextVectorization(
            max_tokens=max_tokens,
            standardize=None,
            split="whitespace",
            output_mode="int",
            output_sequence_length=sequence_length,
            name=f"{name}_preprocessor",
        )
        return EmbeddedFeature("string", preprocessor, kind=kind, embedding_dim=embedding_dim, pooling=pooling)

    def adapt(self, dataset) -> None:
        columns = _columns(dataset)
        missing = sorted(set(self.features) - set(columns))
        if missing:
            raise ValueError(f"adapt(): no data for feature(s) {missing}.")
        for name in _compat.adaptable_preprocessors(self):
            column = columns[name]
            if column.ndim == 1:
                column = column[:, None]
            if column.dtype == object:
                # Strings as UTF-8 whether they are str or the bytes a tf.data
                # pipeline yields: numpy's astype(str) decodes bytes as ASCII
                # and fails on any accented value.
                column = tf.constant(column, dtype=tf.string)
            self.preprocessors[name].adapt(column)
        _compat.finish_adapt(self)


__all__ = ["MAX_DEFAULT_EMBEDDING_DIM", "EmbeddedFeature", "FeatureSpace", "default_embedding_dim"]
