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

import numbers
import os
import typing

import keras

from keras_mtl import _pretrained, _pretrained_image, _task_lora
from keras_mtl.layers.sparse_embedding import SparseEmbedding

Representation = "keras.KerasTensor | dict[str, keras.KerasTensor]"


def _dense_stack(x, units: typing.Sequence[int], activation: str, dropout: float, name: str):
    for i, width in enumerate(units):
        x = keras.layers.Dense(int(width), activation=activation, name=f"{name}_dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout_{i}")(x)
    return x


def _concat_inputs(inputs, name: str):
    if isinstance(inputs, typing.Mapping):
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
    units: typing.Sequence[int] = (128, 64),
    *,
    activation: str = "relu",
    dropout: float = 0.0,
    name: str = "trunk",
) -> typing.Callable:
    """Dense layers over numeric inputs (a tensor, or a dict of them concatenated).

    Example:
    >>> rep = mlp([16, 8])(keras.Input((4,)))
    >>> rep.shape
    (None, 8)
    """

    def build(inputs):
        return _dense_stack(_concat_inputs(inputs, name), units, activation, dropout, name)

    return build


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedPooling1D(keras.layers.Layer):
    """Mean or sum of token embeddings (batch, T, d) over the tokens whose id is not 0 (padding).

    Called on `[embeddings, ids]`, ids being the (batch, T) token ids the
    embeddings were looked up with. Keras' `GlobalAveragePooling1D` with an
    `Embedding(mask_zero=True)` mask divides by the number of real tokens and
    so gives NaN for an empty text or tag list (which real tables have), and
    Keras has no masked sum. Here an empty row pools to zeros, and padding
    is dropped with `where`, not multiplied by 0, so not even an inf in the
    padding row reaches the output. The mask comes from the ids rather than
    from Keras' mask propagation, which adds a bare `NotEqual` op to the
    Functional graph between the weightless front and the embedding.

    Example:
    >>> import numpy as np
    >>> ids = np.array([[1, 2, 0], [0, 0, 0]])
    >>> table = keras.layers.Embedding(3, 1, embeddings_initializer=keras.initializers.Constant([[1e9], [1.0], [3.0]]))
    >>> MaskedPooling1D("mean")([table(ids), ids]).numpy().ravel().tolist()
    [2.0, 0.0]
    """

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("mean", "sum"):
            raise ValueError(f"MaskedPooling1D: mode must be 'mean' or 'sum', got {mode!r}.")
        self.mode = mode

    def call(self, inputs):
        embeddings, ids = inputs
        keep = keras.ops.expand_dims(keras.ops.not_equal(ids, 0), -1)
        total = keras.ops.sum(keras.ops.where(keep, embeddings, keras.ops.zeros_like(embeddings)), axis=1)
        if self.mode == "sum":
            return total
        count = keras.ops.sum(keras.ops.cast(keep, total.dtype), axis=1)
        return total / keras.ops.maximum(count, keras.ops.ones_like(count))

    def compute_output_shape(self, input_shape):
        embeddings_shape = input_shape[0]
        return (embeddings_shape[0], embeddings_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _is_embedded(feature) -> bool:
    from keras_mtl.preprocessing import EmbeddedFeature

    return isinstance(feature, EmbeddedFeature)


def _embedded_representation(feature_space, encoded: typing.Mapping, name: str):
    """Dict-mode FeatureSpace outputs as one (batch, d) tensor: numeric and
    one-hot parts concatenated in the weightless front, each embedded
    feature through its own `Embedding` (flattened, or pooled over tokens)."""
    dense, embedded = [], []
    for key in sorted(encoded):
        tensor = encoded[key]
        feature = feature_space.features.get(key)  # None for a feature cross
        if _is_embedded(feature):
            x = SparseEmbedding(feature.cardinality, feature.output_dim, name=f"{key}_embedding")(tensor)
            if feature.pooling is not None:
                # Text and lists pad with id 0 (for a single id, 0 is the OOV
                # slot or a hash bin: a real value, so nothing is masked there).
                x = MaskedPooling1D(feature.pooling, name=f"{key}_{feature.pooling}_pool")([x, tensor])
            else:
                x = keras.layers.Flatten(name=f"{key}_flatten")(x)
            embedded.append(x)
        elif tensor.dtype not in ("float16", "bfloat16", "float32", "float64"):
            raise ValueError(
                f"trunks.tabular: feature {key!r} gives {tensor.dtype} values (output_mode='int'?); "
                "use FeatureSpace.embedded_categorical or FeatureSpace.hashed to embed it, or "
                "output_mode='one_hot'."
            )
        else:
            dense.append(tensor)
    if len(dense) > 1:
        # Weightless, so `encoding.split` keeps it in the front: the encoded
        # step reads one numeric block plus one id tensor per embedded feature.
        dense = [keras.layers.Concatenate(name=f"{name}_numeric")(dense)]
    parts = dense + embedded
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate(name=f"{name}_features")(parts)


def tabular(
    feature_space: keras.utils.FeatureSpace,
    units: typing.Sequence[int] = (128, 64),
    *,
    activation: str = "relu",
    dropout: float = 0.0,
    name: str = "trunk",
) -> typing.Callable:
    """Raw table columns in: `keras.utils.FeatureSpace` encoding, then Dense layers.

    The feature space must be adapted, and the model's inputs must be its
    `get_inputs()` (what `keras_mtl.data` datasets expose as `.inputs`), so
    that normalisation and vocabulary lookups run inside the model.

    With `output_mode="concat"` the Dense layers read FeatureSpace's
    concatenated vector (numbers and one-hot categories). With
    `output_mode="dict"` numeric and one-hot features are concatenated, each
    embedded feature (`keras_mtl.preprocessing.FeatureSpace.embedded_categorical`,
    `hashed`, `text`, `token_list`) goes through a `layers.SparseEmbedding`
    named `<feature>_embedding` (flattened for one id, masked mean or sum
    pooled over the tokens of a text or list, `<feature>_mean_pool`), and
    all of them are concatenated before the Dense layers. Lookups, hashing
    and tokenisation stay in the weightless front that
    `keras_mtl._encoding.split` cuts off; the embeddings are in the learned
    part.

    Example:
    >>> fs = keras.utils.FeatureSpace({"x": "float_normalized", "c": "string_categorical"})
    >>> fs.adapt({"x": [[1.0], [2.0]], "c": [["a"], ["b"]]})
    >>> tabular(fs, [8])(fs.get_inputs()).shape
    (None, 8)
    >>> import numpy as np
    >>> from keras_mtl.preprocessing import FeatureSpace
    >>> fs = FeatureSpace({"x": "float_normalized", "user": FeatureSpace.hashed(1000, embedding_dim=4)},
    ...                   output_mode="dict")
    >>> fs.adapt({"x": np.array([[1.0], [2.0]]), "user": np.array([["u1"], ["u2"]], dtype=object)})
    >>> model = keras.Model(fs.get_inputs(), tabular(fs, [])(fs.get_inputs()))
    >>> tuple(model.get_layer("user_embedding").embeddings.shape), model.output.shape
    ((1000, 4), (None, 5))
    """
    def build(inputs):
        expected = feature_space.get_inputs()
        if not isinstance(inputs, typing.Mapping) or any(
            inputs.get(k) is not v for k, v in expected.items()
        ):
            raise ValueError(
                "trunks.tabular: the model inputs must be the feature space's own "
                "inputs (`feature_space.get_inputs()`, i.e. `data.inputs`), so that "
                "preprocessing is part of the model."
            )
        encoded = feature_space.get_encoded_features()
        if feature_space.output_mode == "dict":
            encoded = _embedded_representation(feature_space, encoded, name)
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
) -> typing.Callable:
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
        if isinstance(inputs, typing.Mapping):
            if len(inputs) != 1:
                raise ValueError(
                    f"trunks.text takes one string input; got inputs {sorted(inputs)}."
                )
            (inputs,) = inputs.values()
        tokens = vectorizer(inputs)
        x = SparseEmbedding(vocab_size, embedding_dim, name=f"{name}_embedding")(tokens)
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
    filters: typing.Sequence[int] = (32, 64),
    *,
    units: int = 128,
    rescale: float | None = 1.0 / 255,
    dropout: float = 0.0,
    name: str = "trunk",
) -> typing.Callable:
    """A small CNN: [Conv-ReLU-MaxPool] per entry of `filters`, global pooling, Dense.

    `rescale` multiplies raw pixels first (1/255 for uint8 images; None to skip).

    Example:
    >>> image([8], units=16)(keras.Input((28, 28, 1))).shape
    (None, 16)
    """

    def build(inputs):
        if isinstance(inputs, typing.Mapping):
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


def pretrained(
    backbone,
    *,
    preprocessor=None,
    train: str = "frozen",
    lora_rank: int = 4,
    pooling: str | None = None,
    sequence_length: int | None = None,
    name: str = "trunk",
) -> typing.Callable:
    """A pretrained KerasHub text encoder or image backbone, with its preprocessing inside the model.

    Text encoders (BERT, ...: token ids in) take raw strings and return
    `{"pooled": (batch, d), "sequence": (batch, T, d)}` like `text`,
    so `Tagging` tasks read one vector per token (T is the preprocessor's
    `sequence_length`, special tokens such as BERT's `[CLS]`/`[SEP]`
    included: tag labels are per word piece, padded to T). Needs
    `keras-hub` (`pip install 'keras-mtl[pretrained]'`).

    Image backbones (ResNet, ViT, ...: one image batch in; a backbone
    object that takes one (batch, H, W, C) input, or a preset directory
    whose config gives an `image_shape`) take raw images, float or uint8
    (batch, H, W, C), run through the backbone's `ImageConverter`
    (resize, rescale) in the model, and return `{"pooled": (batch, d)}`:
    no per-token output, so `Tagging` tasks are refused. A named image
    preset is loaded as a text one (it needs the network either way): pass
    `keras_hub.models.Backbone.from_preset(name)` or its saved directory.
    `train="task_lora"` is for text encoders for now.

    Args:
        backbone: a `keras_hub.models.Backbone`, a local preset directory
            (written by `backbone.save_to_preset(dir)`), or a KerasHub preset
            name or handle (downloaded, so it needs the network). A preset is
            loaded when the trunk is built, i.e. inside the strategy scope
            the model is built in.
        preprocessor: a `keras_hub.models.Preprocessor` (tokenizer and
            packer), or a preset directory or name to load a
            `TextClassifierPreprocessor` from; default: the `backbone` preset
            (which must then hold the tokenizer too: `tokenizer.save_to_preset(dir)`).
            For an image backbone: a `keras_hub.layers.ImageConverter`, a
            KerasHub image preprocessor holding one, or a preset directory;
            default: the backbone preset's converter if it saved one
            (`converter.save_to_preset(dir)`), else none (images reach the
            backbone as they are, cast to float).
        train: "frozen" (the backbone does not train; only what is above it
            does), "lora" (Keras' LoRA: low-rank adapters on the attention
            query and value projections train, every original weight is
            frozen, those projections' biases included), "task_lora" (the
            same adapters, one set per task, layers named `<task>_lora`: each
            task takes its own pass through the frozen backbone; for
            `models.shared_bottom` and `models.single_task`), or "full".
        lora_rank: the adapters' rank, for train="lora" and "task_lora".
        pooling: "cls" (the backbone's own pooled output where it has one,
            BERT's pooler over `[CLS]`, else the first token's vector) or
            "mean" (the mean over real tokens, padding excluded); default
            (None) "cls". For image backbones: a feature map (ResNet) pools
            over positions, "mean" (or "avg", the default) or "max"; tokens
            (ViT) give the class token ("cls", the default where there is
            one) or pool over the patch tokens ("mean", "max").
        sequence_length: T, the packed length; default: the preprocessor's
            (KerasHub's default is 512; it must not exceed the backbone's
            `max_sequence_length`). A preprocessor object given is set to it.
        name: the encoder layer's name.

    The tokenizer runs tensorflow-text ops, which TF Serving links, so the
    export takes raw strings (Python clients `import tensorflow_text` to load
    it). A model saved to `.keras` keeps its training mode; with "lora" the
    saved kernels have the adapters merged in and reloading puts fresh
    adapters on them (equal predictions; the new adapters train). A trunk made from a backbone object puts that
    object (and its weights) in the model it builds; make a trunk per model.

    Example (`docs/pretrained.md` builds a small preset and runs this):
    ```python
    trunk = mtl.trunks.pretrained("path/to/preset", train="lora", lora_rank=4)
    model = mtl.models.shared_bottom(keras.Input((), dtype="string"), tasks, trunk=trunk)
    image_trunk = mtl.trunks.pretrained("path/to/resnet_preset", train="full")  # pooling: mean
    model = mtl.models.mmoe(keras.Input((224, 224, 3), dtype="uint8"), tasks, trunk=image_trunk)
    ```
    """
    if _pretrained_image.is_image_backbone(backbone):
        return _pretrained_image.trunk(backbone, preprocessor=preprocessor, train=train, lora_rank=lora_rank,
                                       pooling=pooling, sequence_length=sequence_length, name=name)
    pooling = "cls" if pooling is None else pooling  # text encoders: the backbone's pooled output
    _pretrained.check_options(train, pooling, lora_rank)
    if sequence_length is not None and (
        isinstance(sequence_length, bool) or not isinstance(sequence_length, numbers.Integral) or sequence_length < 2
    ):
        raise ValueError(f"trunks.pretrained: sequence_length must be an int >= 2, got {sequence_length!r}.")
    hub = _pretrained.keras_hub()
    for what, source in (("backbone", backbone), ("preprocessor", preprocessor)):
        if isinstance(source, (str, os.PathLike)) and _pretrained.looks_like_path(os.fspath(source)):
            _pretrained.check_preset_dir(os.fspath(source), what, backbone=what == "backbone")
    if preprocessor is None:
        if isinstance(backbone, hub.models.Backbone):
            raise ValueError(
                f"trunks.pretrained: backbone {backbone.name!r} is an object, so the preprocessor cannot "
                "be found from it; pass preprocessor= (a keras_hub Preprocessor or a preset directory)."
            )
        preprocessor = backbone

    def build(inputs, tasks=None):
        if train == "task_lora" and tasks is None:
            raise ValueError(
                "trunks.pretrained(train='task_lora') gives each task its own adapters and its own pass "
                "through the encoder, so it is built with the tasks: use it with models.shared_bottom or "
                "models.single_task (mixtures and columns mix one shared representation; for them use "
                "train='lora')."
            )
        if isinstance(inputs, typing.Mapping):
            if len(inputs) != 1:
                raise ValueError(f"trunks.pretrained takes one string input; got inputs {sorted(inputs)}.")
            (inputs,) = inputs.values()
        if inputs.dtype != "string" or not (
            len(inputs.shape) == 1 or (len(inputs.shape) == 2 and inputs.shape[-1] == 1)
        ):
            raise ValueError(
                "trunks.pretrained takes raw strings, keras.Input((), dtype='string') or shape (1,); "
                f"got dtype {inputs.dtype} and shape {inputs.shape}."
            )
        encoder_backbone = _pretrained.load_backbone(backbone)
        encoder_preprocessor = _pretrained.load_preprocessor(preprocessor, sequence_length)
        _pretrained.backbone_outputs_sequence(encoder_backbone)
        _pretrained.check_sequence_length(encoder_backbone, encoder_preprocessor)
        encoder = _pretrained.PretrainedEncoder(
            encoder_backbone, encoder_preprocessor, train=train, lora_rank=lora_rank, pooling=pooling, name=name
        )
        if train == "task_lora":
            return _task_lora.encode_per_task(encoder, inputs, [t.name for t in tasks], lora_rank)
        return encoder(inputs)

    # Factories hand a per-task trunk the tasks and read one representation per task.
    build.per_task = train == "task_lora"
    return build


__all__ = ["MaskedPooling1D", "image", "mlp", "pretrained", "tabular", "text"]
