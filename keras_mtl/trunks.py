"""Shared encoders ("trunks"): raw inputs in, one shared representation out.

A trunk is a callable `trunk(inputs) -> representation` that adds ordinary
Keras layers to a Functional graph. The representation is a tensor of shape
(batch, d), or for sequence trunks a dict `{"pooled": (batch, d),
"sequence": (batch, T, d)}` so that token-level tasks (`Tagging`) can read
per-token features while the others read the pooled ones. Preprocessing
(feature normalisation, vocabulary lookup, tokenisation) is part of the
graph, so the exported model takes raw values.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import keras

Representation = "keras.KerasTensor | dict[str, keras.KerasTensor]"


def _dense_stack(x, units: Sequence[int], activation: str, dropout: float, name: str):
    for i, width in enumerate(units):
        x = keras.layers.Dense(int(width), activation=activation, name=f"{name}_dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout_{i}")(x)
    return x


def _concat_inputs(inputs, name: str):
    if isinstance(inputs, Mapping):
        tensors = [inputs[k] for k in sorted(inputs)]
        for key, t in zip(sorted(inputs), tensors):
            if t.dtype not in ("float16", "bfloat16", "float32", "float64", "int32", "int64"):
                raise ValueError(
                    f"mlp trunk: input {key!r} has dtype {t.dtype}; the mlp trunk takes "
                    "numeric inputs only (use trunks.tabular for strings/categories)."
                )
        tensors = [
            keras.layers.Flatten(name=f"{name}_flatten_{key}")(t) if len(t.shape) != 2 else t
            for key, t in zip(sorted(inputs), tensors)
        ]
        if len(tensors) == 1:
            return tensors[0]
        return keras.layers.Concatenate(name=f"{name}_concat")(tensors)
    if len(inputs.shape) != 2:
        return keras.layers.Flatten(name=f"{name}_flatten")(inputs)
    return inputs


def mlp(
    units: Sequence[int] = (128, 64),
    *,
    activation: str = "relu",
    dropout: float = 0.0,
    name: str = "trunk",
) -> Callable:
    """Dense layers over numeric inputs (a tensor, or a dict of them concatenated).

    Example:
    >>> rep = mlp([16, 8])(keras.Input((4,)))
    >>> rep.shape
    (None, 8)
    """

    def build(inputs):
        return _dense_stack(_concat_inputs(inputs, name), units, activation, dropout, name)

    return build


def tabular(
    feature_space: keras.utils.FeatureSpace,
    units: Sequence[int] = (128, 64),
    *,
    activation: str = "relu",
    dropout: float = 0.0,
    name: str = "trunk",
) -> Callable:
    """Raw table columns in: `keras.utils.FeatureSpace` encoding, then Dense layers.

    The feature space must be adapted, and the model's inputs must be its
    `get_inputs()` (what `keras_mtl.data` datasets expose as `.inputs`), so
    that normalisation and vocabulary lookups run inside the model.

    Example:
    >>> fs = keras.utils.FeatureSpace({"x": "float_normalized", "c": "string_categorical"})
    >>> fs.adapt({"x": [[1.0], [2.0]], "c": [["a"], ["b"]]})
    >>> tabular(fs, [8])(fs.get_inputs()).shape
    (None, 8)
    """
    if feature_space.output_mode != "concat":
        raise ValueError(
            "trunks.tabular needs a FeatureSpace with output_mode='concat'; got "
            f"{feature_space.output_mode!r}."
        )

    def build(inputs):
        expected = feature_space.get_inputs()
        if not isinstance(inputs, Mapping) or any(
            inputs.get(k) is not v for k, v in expected.items()
        ):
            raise ValueError(
                "trunks.tabular: the model inputs must be the feature space's own "
                "inputs (`feature_space.get_inputs()`, i.e. `data.inputs`), so that "
                "preprocessing is part of the model."
            )
        encoded = feature_space.get_encoded_features()
        return _dense_stack(encoded, units, activation, dropout, name)

    return build


def text(
    vectorizer: keras.layers.TextVectorization,
    *,
    embedding_dim: int = 64,
    encoder: str = "cnn",
    units: int = 64,
    num_layers: int = 2,
    dropout: float = 0.0,
    name: str = "trunk",
) -> Callable:
    """Raw strings in: tokenisation inside the model, embedding and an encoder.

    Returns `{"pooled": (batch, units), "sequence": (batch, T, units)}`.
    `vectorizer` is an adapted `keras.layers.TextVectorization` with
    `output_mode="int"` and a fixed `output_sequence_length` (the T that
    `Tagging` labels are padded to); it runs on core TensorFlow ops, so the
    export loads in TF Serving. `encoder` is `"cnn"` (stacked 1-D convolutions)
    or `"bigru"` (bidirectional GRU layers).

    Example:
    >>> vec = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    >>> vec.adapt(["the cat sat", "the dog ran"])
    >>> rep = text(vec, units=8)(keras.Input((), dtype="string"))
    >>> rep["pooled"].shape, rep["sequence"].shape
    ((None, 8), (None, 6, 8))
    """
    if encoder not in ("cnn", "bigru"):
        raise ValueError(f"trunks.text: encoder must be 'cnn' or 'bigru', got {encoder!r}.")
    config = vectorizer.get_config()
    if config.get("output_mode") != "int" or not config.get("output_sequence_length"):
        raise ValueError(
            "trunks.text needs a TextVectorization with output_mode='int' and an "
            "output_sequence_length."
        )
    vocab_size = vectorizer.vocabulary_size()
    if vocab_size <= 2:
        raise ValueError("trunks.text: the TextVectorization has no vocabulary; call adapt() first.")

    def build(inputs):
        if isinstance(inputs, Mapping):
            if len(inputs) != 1:
                raise ValueError(
                    f"trunks.text takes one string input; got inputs {sorted(inputs)}."
                )
            (inputs,) = inputs.values()
        tokens = vectorizer(inputs)
        x = keras.layers.Embedding(vocab_size, embedding_dim, name=f"{name}_embedding")(tokens)
        for i in range(num_layers):
            if encoder == "cnn":
                x = keras.layers.Conv1D(
                    units, 3, padding="same", activation="relu", name=f"{name}_conv_{i}"
                )(x)
            else:
                x = keras.layers.Bidirectional(
                    keras.layers.GRU(units // 2, return_sequences=True), name=f"{name}_bigru_{i}"
                )(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"{name}_dropout_{i}")(x)
        pooled = keras.layers.GlobalMaxPooling1D(name=f"{name}_pool")(x)
        return {"pooled": pooled, "sequence": x}

    return build


def image(
    filters: Sequence[int] = (32, 64),
    *,
    units: int = 128,
    rescale: float | None = 1.0 / 255,
    dropout: float = 0.0,
    name: str = "trunk",
) -> Callable:
    """A small CNN: [Conv-ReLU-MaxPool] per entry of `filters`, global pooling, Dense.

    `rescale` multiplies raw pixels first (1/255 for uint8 images; None to skip).

    Example:
    >>> image([8], units=16)(keras.Input((28, 28, 1))).shape
    (None, 16)
    """

    def build(inputs):
        if isinstance(inputs, Mapping):
            (inputs,) = inputs.values()
        x = inputs
        if len(x.shape) == 3:  # (batch, H, W): grayscale without a channel axis
            x = keras.layers.Reshape((*x.shape[1:], 1), name=f"{name}_channels")(x)
        if rescale is not None:
            x = keras.layers.Rescaling(rescale, name=f"{name}_rescale")(x)
        for i, f in enumerate(filters):
            x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"{name}_conv_{i}")(x)
            x = keras.layers.MaxPooling2D(name=f"{name}_pool_{i}")(x)
        x = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
        return _dense_stack(x, [units], "relu", dropout, name)

    return build
