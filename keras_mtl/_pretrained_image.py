"""KerasHub image backbones as trunks: the image encoder layer and the trunk built on it.

`keras_mtl.trunks.pretrained` sends image backbones here (`is_image_backbone`)
and text encoders to `_pretrained`, whose loading, training-mode and
LoRA-restart helpers both use. The encoder holds the backbone and its
`ImageConverter` (resize, rescale), so the model and its export take raw
images, float or uint8, (batch, H, W, C).
"""

from __future__ import annotations

import json
import os
import typing

import keras

from keras_mtl import _pretrained

# "avg" is the name Keras' applications use for "mean"; both are accepted.
POOLINGS = ("cls", "mean", "avg", "max")
CONVERTER_FILE = "image_converter.json"  # what `ImageConverter.save_to_preset` writes


def describe(backbone) -> str:
    """How errors name a backbone: its name and class."""
    return f"backbone {backbone.name!r} ({type(backbone).__name__})"


def takes_images(backbone) -> bool:
    """Whether a KerasHub backbone object has one input, an image batch (batch, H, W, C)."""
    inputs = keras.tree.flatten(backbone.input)
    return len(inputs) == 1 and len(inputs[0].shape) == 4


def is_image_backbone(backbone) -> bool:
    """Whether `backbone` (a KerasHub backbone object or a local preset directory) takes images.

    An object takes one image batch; a preset directory's `config.json`
    gives an `image_shape` (every KerasHub image backbone's config has one, a
    text encoder's has none). Anything else, named presets included, is left
    to the text path, which names what it cannot load.

    Example:
    >>> import keras_hub
    >>> is_image_backbone(keras_hub.models.ViTBackbone(image_shape=(8, 8, 3), patch_size=4,
    ...     num_layers=1, num_heads=1, hidden_dim=4, mlp_dim=4))
    True
    """
    hub = _pretrained.keras_hub()
    if isinstance(backbone, hub.models.Backbone):
        return takes_images(backbone)
    if not isinstance(backbone, (str, os.PathLike)):
        return False
    config_path = os.path.join(os.path.expanduser(os.fspath(backbone)), _pretrained.CONFIG_FILE)
    if not os.path.isfile(config_path):
        return False
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False  # the text path's preset check names the unreadable file
    inner = config.get("config") if isinstance(config, dict) else None
    return isinstance(inner, dict) and "image_shape" in inner


def load_converter(preprocessor, backbone_source):
    """The `ImageConverter` to put before the backbone, or None for images fed as they are.

    `preprocessor` is an `ImageConverter`, a KerasHub preprocessor holding one
    (`ResNetImageClassifierPreprocessor`, ...), a preset directory or name,
    or None: then the backbone's preset directory's converter if it saved one.
    """
    hub = _pretrained.keras_hub()
    if preprocessor is None:
        if isinstance(backbone_source, (str, os.PathLike)):
            path = os.path.expanduser(os.fspath(backbone_source))
            if os.path.isfile(os.path.join(path, CONVERTER_FILE)):
                return _pretrained.load(path, "image converter", hub.layers.ImageConverter.from_preset)
        return None
    if isinstance(preprocessor, hub.layers.ImageConverter):
        return preprocessor
    converter = getattr(preprocessor, "image_converter", None)
    if isinstance(preprocessor, hub.models.Preprocessor) and isinstance(converter, hub.layers.ImageConverter):
        return converter
    if isinstance(preprocessor, (str, os.PathLike)):
        return _pretrained.load(os.fspath(preprocessor), "image converter", hub.layers.ImageConverter.from_preset)
    raise TypeError(
        "trunks.pretrained: for an image backbone, preprocessor must be a keras_hub.layers.ImageConverter, "
        "a KerasHub image preprocessor that has one, a preset directory or None; got "
        f"{type(preprocessor).__name__}."
    )


def check_options(train: str, pooling: str | None, lora_rank: int) -> None:
    """Raises a ValueError naming the argument unless the options fit an image backbone."""
    if train == "task_lora":
        raise ValueError(
            "trunks.pretrained: train='task_lora' is for text encoders for now; for an image backbone "
            "use 'lora' (one set of adapters the tasks share), 'frozen' or 'full'."
        )
    _pretrained.check_options(train, "mean" if pooling is None else pooling, lora_rank, poolings=POOLINGS)


def resolve_pooling(backbone, pooling: str | None) -> str:
    """The pooling for this backbone's output: `pooling`, or its natural one when None.

    Feature maps (batch, H, W, C) pool over positions ("mean"/"avg" or
    "max"); token outputs (batch, tokens, d) take the class token ("cls",
    the default where the backbone has one) or pool over the patch tokens.
    """
    output = backbone.output
    if isinstance(output, dict) or len(output.shape) not in (3, 4):
        shape = {k: v.shape for k, v in output.items()} if isinstance(output, dict) else output.shape
        raise ValueError(
            f"trunks.pretrained: {describe(backbone)} outputs {shape}; an image backbone must output "
            "one feature map (batch, H, W, C) or one token sequence (batch, tokens, d)."
        )
    has_class_token = len(output.shape) == 3 and getattr(backbone, "use_class_token", True)
    if pooling is None:
        return "cls" if has_class_token else "mean"
    if pooling == "cls" and not has_class_token:
        what = "a feature map (batch, H, W, C)" if len(output.shape) == 4 else "tokens without a class token"
        raise ValueError(
            f"trunks.pretrained: pooling='cls' but {describe(backbone)} outputs {what}; "
            "use pooling='mean' (or 'avg') or 'max'."
        )
    return pooling


def check_backbone(backbone) -> None:
    """Raises naming the backbone unless it takes one channels-last image batch."""
    if not takes_images(backbone):
        shapes = [t.shape for t in keras.tree.flatten(backbone.input)]
        raise ValueError(
            f"trunks.pretrained: {describe(backbone)} takes inputs of shapes {shapes}; an image "
            "backbone takes one image batch (batch, H, W, C)."
        )
    if getattr(backbone, "data_format", "channels_last") == "channels_first":
        raise ValueError(
            f"trunks.pretrained: {describe(backbone)} is channels_first; trunks.pretrained takes "
            "channels_last images (batch, H, W, C): build the backbone with data_format='channels_last'."
        )


def check_images(images, backbone, converter) -> None:
    """Raises naming both unless `images` can reach the backbone (channels; size when nothing resizes)."""
    if images.dtype in ("string", "bool") or len(images.shape) != 4:
        raise ValueError(
            "trunks.pretrained with an image backbone takes raw images (batch, H, W, C), float or uint8, "
            f"e.g. keras.Input((224, 224, 3), dtype='uint8'); got dtype {images.dtype} and shape {images.shape}."
        )
    expected = tuple(keras.tree.flatten(backbone.input)[0].shape[1:])
    if images.shape[-1] is not None and expected[-1] is not None and images.shape[-1] != expected[-1]:
        raise ValueError(
            f"trunks.pretrained: images have {images.shape[-1]} channels but {describe(backbone)} "
            f"takes {expected[-1]} (its image shape is {expected})."
        )
    size = converter.image_size if converter is not None else tuple(images.shape[1:3])
    if all(s is not None for s in (*size, *expected[:2])) and tuple(size) != tuple(expected[:2]):
        source = f"the image converter resizes to {tuple(size)}" if converter is not None else f"images are {tuple(size)}"
        raise ValueError(
            f"trunks.pretrained: {source} but {describe(backbone)} takes images of {expected[:2]}; "
            "pass preprocessor=keras_hub.layers.ImageConverter(image_size=...) with its size."
        )


@keras.saving.register_keras_serializable(package="keras_mtl")
class PretrainedImageEncoder(_pretrained.BackboneEncoder):
    """Raw images in, `{"pooled": (batch, d)}` out: a KerasHub `ImageConverter`
    (resize, rescale; optional) and image backbone in one layer.

    Integer images (uint8) are cast to the backbone's compute dtype before
    the converter. The training mode and the config are `BackboneEncoder`'s.

    Example:
    >>> import keras_hub
    >>> vit = keras_hub.models.ViTBackbone(image_shape=(8, 8, 3), patch_size=4, num_layers=1,
    ...                                    num_heads=1, hidden_dim=4, mlp_dim=4)
    >>> PretrainedImageEncoder(vit, train="lora", lora_rank=2)(keras.Input((8, 8, 3)))["pooled"].shape
    (None, 4)
    """

    preprocessing_key = "converter"

    def __init__(self, backbone, converter=None, train: str = "frozen", lora_rank: int = 4, pooling: str | None = None, **kwargs):
        check_options(train, pooling, lora_rank)
        check_backbone(backbone)
        super().__init__(backbone, converter, train, lora_rank, resolve_pooling(backbone, pooling), **kwargs)

    def call(self, images, training=None):
        x = keras.ops.cast(images, self.backbone.compute_dtype)
        if self.converter is not None:
            x = self.converter(x)
        features = self.backbone(keras.tree.pack_sequence_as(self.backbone.input, [x]), training=training)
        if len(features.shape) == 4:  # (batch, H, W, C): pool over positions
            axes = (1, 2)
        elif self.pooling == "cls":
            return {"pooled": features[:, 0, :]}
        else:  # (batch, tokens, d): pool over the patch tokens, the class token left out
            axes = 1
            if getattr(self.backbone, "use_class_token", True):
                features = features[:, 1:, :]
        pool = keras.ops.max if self.pooling == "max" else keras.ops.mean
        return {"pooled": pool(features, axis=axes)}

    def compute_output_spec(self, images):
        # From the backbone's symbolic output: the converter's resize runs
        # only on real tensors (KerasHub preprocessing layers).
        output = self.backbone.output
        return {"pooled": keras.KerasTensor((images.shape[0], output.shape[-1]), dtype=output.dtype)}


def trunk(backbone, *, preprocessor, train: str, lora_rank: int, pooling: str | None, sequence_length, name: str) -> typing.Callable:
    """`trunks.pretrained` for an image backbone: the trunk's build function (see its docstring)."""
    check_options(train, pooling, lora_rank)
    if sequence_length is not None:
        raise ValueError(
            f"trunks.pretrained: sequence_length={sequence_length!r} is for text encoders; the backbone "
            "takes images (resize them with an ImageConverter, preprocessor=)."
        )
    if isinstance(preprocessor, (str, os.PathLike)) and _pretrained.looks_like_path(os.fspath(preprocessor)):
        _pretrained.check_preset_dir(os.fspath(preprocessor), "image converter", backbone=False)

    def build(inputs):
        if isinstance(inputs, typing.Mapping):
            if len(inputs) != 1:
                raise ValueError(f"trunks.pretrained takes one image input; got inputs {sorted(inputs)}.")
            (inputs,) = inputs.values()
        encoder_backbone = _pretrained.load_backbone(backbone)
        check_backbone(encoder_backbone)
        converter = load_converter(preprocessor, backbone)
        check_images(inputs, encoder_backbone, converter)
        encoder = PretrainedImageEncoder(
            encoder_backbone, converter, train=train, lora_rank=lora_rank, pooling=pooling, name=name
        )
        return encoder(inputs)

    return build
