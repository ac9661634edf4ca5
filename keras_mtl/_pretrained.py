"""KerasHub backbones as trunks: loading presets, training modes, and the encoder layer.

`keras_mtl.trunks.pretrained` is the public entry point; this module holds
what it is built from. KerasHub (`pip install keras-mtl[pretrained]`) is
imported only when a pretrained trunk is made or loaded, so keras_mtl works
without it.
"""

from __future__ import annotations

import json
import numbers
import os
import typing

import keras

from keras_mtl import _compat, _task_lora

TRAIN_MODES = ("frozen", "lora", "task_lora", "full")
POOLINGS = ("cls", "mean")
CONFIG_FILE = "config.json"  # what every KerasHub preset directory holds


def check_options(train: str, pooling: str, lora_rank: int, poolings: typing.Sequence[str] = POOLINGS) -> None:
    """Raises a ValueError naming the argument unless train, pooling (one of `poolings`) and lora_rank are valid."""
    if train not in TRAIN_MODES:
        raise ValueError(f"trunks.pretrained: train must be one of {list(TRAIN_MODES)}, got {train!r}.")
    if pooling not in poolings:
        raise ValueError(f"trunks.pretrained: pooling must be one of {list(poolings)}, got {pooling!r}.")
    if isinstance(lora_rank, bool) or not isinstance(lora_rank, numbers.Integral) or lora_rank < 1:
        raise ValueError(f"trunks.pretrained: lora_rank must be a positive int, got {lora_rank!r}.")


def keras_hub():
    """The `keras_hub` module, or an ImportError saying how to install it."""
    try:
        import keras_hub as module
    except ImportError as e:
        raise ImportError(
            "trunks.pretrained needs KerasHub: pip install 'keras-mtl[pretrained]' "
            f"(or pip install keras-hub). Importing it failed: {e}"
        ) from e
    return module


def looks_like_path(preset: str) -> bool:
    """Whether a preset string names a local directory rather than a preset name or a handle."""
    if "://" in preset:
        return False
    return os.path.exists(preset) or preset.startswith((".", "~")) or os.sep in preset or "/" in preset


def check_preset_dir(path: str, what: str, *, backbone: bool) -> str:
    """Raises a ValueError naming `path` unless it is a KerasHub preset directory (of a backbone if `backbone`)."""
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise ValueError(f"trunks.pretrained: {what} preset directory {path!r} does not exist.")
    if not os.path.isdir(path):
        raise ValueError(f"trunks.pretrained: {what} preset {path!r} is a file, not a preset directory.")
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ValueError(
            f"trunks.pretrained: {what} preset directory {path!r} is not a KerasHub backbone preset "
            f"(it has no {CONFIG_FILE}); write one with backbone.save_to_preset(directory)."
        )
    if backbone:
        try:
            with open(config_path) as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(
                f"trunks.pretrained: {what} preset directory {path!r}: {CONFIG_FILE} is not readable JSON ({e})."
            ) from e
        hub = keras_hub()  # importing it registers KerasHub's classes
        registered = config.get("registered_name") if isinstance(config, dict) else None
        found = keras.saving.get_registered_object(registered) if registered else None
        if not (isinstance(found, type) and issubclass(found, hub.models.Backbone)):
            raise ValueError(
                f"trunks.pretrained: {what} preset directory {path!r} is not a KerasHub backbone preset "
                f"(its {CONFIG_FILE} describes {registered or 'no registered Keras object'}); "
                "write one with backbone.save_to_preset(directory)."
            )
    return path


def load(preset: str, what: str, loader: typing.Callable, **kwargs):
    """`loader(preset, **kwargs)` (a KerasHub `from_preset`), with errors that name the preset."""
    if looks_like_path(preset):
        path = check_preset_dir(preset, what, backbone=what == "backbone")
        try:
            return loader(path, **kwargs)
        except Exception as e:
            raise ValueError(f"trunks.pretrained: could not load the {what} from preset directory {path!r}: {e}") from e
    try:
        return loader(preset, **kwargs)
    except Exception as e:
        raise ValueError(
            f"trunks.pretrained: could not load the {what} of the named preset {preset!r} (no directory of "
            f"that name exists here): {e}. "
            "Named presets (and kaggle://, hf:// handles) are downloaded from a model hub and need "
            "the network; offline, load the model once where the network is reachable, save it with "
            "save_to_preset(directory) (the backbone and its tokenizer or preprocessor), and pass "
            "that directory."
        ) from e


def load_backbone(preset):
    """A KerasHub `Backbone` from an object, a local preset directory or a preset name."""
    hub = keras_hub()
    if isinstance(preset, hub.models.Backbone):
        return preset
    if isinstance(preset, (str, os.PathLike)):
        return load(os.fspath(preset), "backbone", hub.models.Backbone.from_preset)
    raise TypeError(
        "trunks.pretrained: backbone must be a keras_hub.models.Backbone, a preset directory or a "
        f"preset name; got {type(preset).__name__}."
    )


def load_preprocessor(preset, sequence_length: int | None):
    """A KerasHub text preprocessor (tokenizer + packer) from an object, a preset directory or a name."""
    hub = keras_hub()
    if isinstance(preset, hub.models.Preprocessor):
        if sequence_length is not None:
            preset.sequence_length = int(sequence_length)
        return preset
    if isinstance(preset, (str, os.PathLike)):
        kwargs = {} if sequence_length is None else {"sequence_length": int(sequence_length)}
        return load(os.fspath(preset), "preprocessor", hub.models.TextClassifierPreprocessor.from_preset, **kwargs)
    raise TypeError(
        "trunks.pretrained: preprocessor must be a keras_hub.models.Preprocessor, a preset directory "
        f"or a preset name; got {type(preset).__name__}."
    )


def lora_targets(backbone) -> list:
    """The layers `backbone.enable_lora` would give adapters: KerasHub's target names, with `enable_lora`."""
    names = set(backbone.default_lora_layer_names())
    return [
        layer
        for layer in _compat.sublayers(backbone)
        if layer.name in names and layer.weights and hasattr(layer, "enable_lora")
    ]


def lora_layers(backbone) -> list:
    """The backbone's layers that have LoRA enabled."""
    return [layer for layer in _compat.sublayers(backbone) if getattr(layer, "lora_enabled", False)]


def apply_train_mode(backbone, train: str, lora_rank: int) -> None:
    """Sets what of the backbone trains: nothing ("frozen", "task_lora": the adapters
    are layers of their own), only LoRA adapter kernels ("lora"), everything ("full")."""
    if lora_layers(backbone):
        raise ValueError(
            f"trunks.pretrained: backbone {backbone.name!r} ({type(backbone).__name__}) already has LoRA "
            "enabled; pass a backbone without LoRA (or a preset directory) and choose train='lora' here."
        )
    if train in ("lora", "task_lora") and not lora_targets(backbone):
        raise ValueError(
            f"trunks.pretrained: train={train!r} but backbone {backbone.name!r} ({type(backbone).__name__}) "
            f"has no LoRA-capable layers named {sorted(backbone.default_lora_layer_names())}; use "
            "train='frozen' or 'full'."
        )
    if train in ("frozen", "task_lora"):
        # A backbone saved frozen is rebuilt from a config with trainable=False,
        # which reaches only the backbone itself when its layers are made in
        # its functional graph (ViT, ResNet), and setting the flag to the value
        # it has is skipped (TensorFlow's tracking ignores `x.a = x.a`): set it
        # True first, so that setting it False reaches every layer.
        backbone.trainable = True
        backbone.trainable = False
    elif train == "full":
        backbone.trainable = True
    else:
        # KerasHub's enable_lora freezes every layer, then gives the targets
        # (attention query/value projections) trainable low-rank kernels; it
        # leaves those layers' biases trainable, which is not LoRA: freeze them.
        backbone.enable_lora(int(lora_rank))
        for layer in lora_layers(backbone):
            if getattr(layer, "bias", None) is not None:
                layer.bias.trainable = False


def freeze_unread(backbone, output: str) -> None:
    """Freezes the backbone's layers that `output` does not depend on (BERT's pooler under mean
    pooling): they get no gradient, so training them would only warn and count them as trainable."""
    outputs = backbone.output
    if not isinstance(outputs, dict) or output not in outputs or len(outputs) == 1:
        return
    read = {id(layer) for layer in keras.Model(backbone.input, outputs[output]).layers}
    for layer in backbone.layers:
        if id(layer) not in read and layer.weights:
            layer.trainable = False


def restart_adapters(backbone) -> None:
    """Draws each LoRA layer's `A` kernel again, as `enable_lora` does; `B` stays as it is.

    Keras' loader (`EinsumDense.load_own_variables` on a LoRA layer) loads the
    kernel with the adapter merged in and sets both adapter kernels to zero,
    where no gradient reaches either (each one's gradient is a product with
    the other). With `B` zero the layer's output does not change.
    """
    for layer in lora_layers(backbone):
        a = layer.lora_kernel_a
        a.assign(keras.initializers.HeUniform()(a.shape, dtype=a.dtype))


class AdapterRestart(keras.layers.Layer):
    """Weightless; restarts the backbone's LoRA adapters whenever weights are loaded into it.

    Held as the encoder's private attribute: Keras' loader visits a layer's
    public attributes before its private ones ("private attributes are
    visited last", keras/src/saving/saving_lib.py `_name_key`), so this runs
    after the backbone's own variables are loaded (`.keras` files,
    `load_weights`, checkpoints).
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        _compat.set_untracked(self, "target", backbone)
        self.built = True

    def load_own_variables(self, store):
        restart_adapters(self.target)


class BackboneEncoder(keras.layers.Layer):
    """What the text and image encoders share: a KerasHub backbone trained in one mode,
    the preprocessing layer before it (the attribute and config key `preprocessing_key`
    names), their config, and fresh LoRA adapters after a load (`AdapterRestart`).

    The training mode is part of the layer's config, so a model loaded from a
    `.keras` file trains what the saved one trained: with "lora", Keras saves
    each adapted kernel with its adapter merged in, and loading re-enables
    LoRA with fresh adapters on the merged kernel (`B` zero, so outputs are
    equal; `A` drawn again, so they train).
    """

    preprocessing_key = "preprocessor"

    def __init__(self, backbone, preprocessing, train: str, lora_rank: int, pooling: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        setattr(self, self.preprocessing_key, preprocessing)
        self.train = train
        self.lora_rank = int(lora_rank)
        self.pooling = pooling
        apply_train_mode(backbone, train, self.lora_rank)
        if train == "lora":
            self._adapter_restart = AdapterRestart(backbone, name=f"{self.name}_adapter_restart")
        self.built = True  # the backbone is built; this layer has no weights of its own

    def get_config(self):
        preprocessing = getattr(self, self.preprocessing_key)
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            self.preprocessing_key: None if preprocessing is None else keras.saving.serialize_keras_object(preprocessing),
            "train": self.train,
            "lora_rank": self.lora_rank,
            "pooling": self.pooling,
        }

    @classmethod
    def from_config(cls, config):
        keras_hub()  # registers the KerasHub classes the config names
        config = dict(config)
        for key in ("backbone", cls.preprocessing_key):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_mtl")
class PretrainedEncoder(BackboneEncoder):
    """Raw strings in, `{"pooled": (batch, d), "sequence": (batch, T, d)}` out: a KerasHub
    preprocessor (tokenizer and packer) and backbone in one layer (see `BackboneEncoder`
    for the training mode and the config).
    """

    def __init__(self, backbone, preprocessor, train: str = "frozen", lora_rank: int = 4, pooling: str = "cls", **kwargs):
        check_options(train, pooling, lora_rank)
        super().__init__(backbone, preprocessor, train, lora_rank, pooling, **kwargs)
        if train == "full" and pooling != "cls":
            freeze_unread(backbone, "sequence_output")
        if train == "task_lora":
            targets = lora_targets(backbone)
            _task_lora.check_targets(backbone, targets)
            _compat.set_untracked(self, "_switch", _task_lora.AdapterSwitch(targets))

    def adapter_shapes(self) -> list:
        """The kernel shapes of the layers a task's adapters adapt (train="task_lora")."""
        return [list(layer.kernel.shape) for layer in self._switch.layers]

    def call(self, strings, adapters=None, training=None):
        if len(strings.shape) == 2 and strings.shape[-1] == 1:
            strings = keras.ops.squeeze(strings, axis=-1)
        if self.train != "task_lora":
            return self._encode(self.preprocessor(strings), training)
        if adapters is None:
            raise ValueError(
                f"PretrainedEncoder {self.name!r} (train='task_lora') is called once per task with "
                "adapters=<that task's TaskAdapters output>."
            )
        # Each task's call is a node of its own (its output depends on its
        # adapters only); the tokens of the batch are computed once for all.
        last = self.__dict__.get("_last_packed")
        if last is not None and last[0] is strings:
            packed = last[1]
        else:
            packed = self.preprocessor(strings)
            _compat.set_untracked(self, "_last_packed", (strings, packed))
        with self._switch.active(adapters):
            return self._encode(packed, training)

    def _encode(self, packed, training):
        outputs = self.backbone(packed, training=training)
        if isinstance(outputs, dict):
            sequence = outputs["sequence_output"]
        else:
            sequence = outputs
        if self.pooling == "cls":
            if isinstance(outputs, dict) and "pooled_output" in outputs:
                pooled = outputs["pooled_output"]
            else:
                pooled = sequence[:, 0, :]
        else:
            mask = packed.get("padding_mask") if isinstance(packed, dict) else None
            if mask is None:
                pooled = keras.ops.mean(sequence, axis=1)
            else:
                keep = keras.ops.expand_dims(keras.ops.cast(mask, sequence.dtype), -1)
                count = keras.ops.maximum(keras.ops.sum(keep, axis=1), keras.ops.ones_like(keep[:, 0]))
                pooled = keras.ops.sum(sequence * keep, axis=1) / count
        return {"pooled": pooled, "sequence": sequence}

    def compute_output_spec(self, strings, adapters=None):
        # From the backbone's own symbolic outputs, not by tracing the
        # tokenizer: a model being loaded calls this before the tokenizer's
        # vocabulary (a saved asset) is back.
        outputs = self.backbone.output
        sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
        if self.pooling == "cls" and isinstance(outputs, dict) and "pooled_output" in outputs:
            width, dtype = outputs["pooled_output"].shape[-1], outputs["pooled_output"].dtype
        else:
            width, dtype = sequence.shape[-1], sequence.dtype
        batch = strings.shape[0]
        length = getattr(self.preprocessor, "sequence_length", None)

        return {
            "pooled": keras.KerasTensor((batch, width), dtype=dtype),
            "sequence": keras.KerasTensor((batch, length, sequence.shape[-1]), dtype=sequence.dtype),
        }



def backbone_outputs_sequence(backbone) -> None:
    """Raises naming the backbone unless it takes token ids and gives per-token features (a text encoder)."""
    outputs = backbone.output
    if isinstance(outputs, dict):
        ok = "sequence_output" in outputs
    else:
        ok = len(outputs.shape) == 3
    if not ok or not (isinstance(backbone.input, dict) and "token_ids" in backbone.input):
        raise ValueError(
            f"trunks.pretrained: backbone {backbone.name!r} ({type(backbone).__name__}) neither takes "
            "'token_ids' and gives a per-token 'sequence_output' of shape (batch, T, d) nor takes one "
            "image batch (batch, H, W, C); trunks.pretrained takes text encoders and image backbones."
        )


def check_sequence_length(backbone, preprocessor) -> None:
    """Raises naming both unless the preprocessor's sequence length fits the backbone's positions."""
    length = getattr(preprocessor, "sequence_length", None)
    limit = getattr(backbone, "max_sequence_length", None)
    if length is not None and limit is not None and int(length) > int(limit):
        raise ValueError(
            f"trunks.pretrained: sequence_length {length} is longer than backbone {backbone.name!r}'s "
            f"max_sequence_length {limit}; pass sequence_length=<= {limit} to trunks.pretrained."
        )
