"""trunks.pretrained on KerasHub image backbones: a tiny ResNet (feature map out) and a tiny ViT
(tokens out), built by the tests and saved as local presets with their ImageConverter."""

import json

import keras
import numpy as np
import pytest

import keras_mtl as mtl
from keras_mtl import _pretrained_image, tasks, trunks
from test_pretrained import assert_adapters_train_again

keras_hub = pytest.importorskip("keras_hub")

SIZE = 16
VIT_HIDDEN, VIT_HEADS, VIT_LAYERS = 16, 2, 1
RESNET_WIDTH = 256  # a bottleneck stack of 64 filters outputs 4 * 64 channels


def tiny_resnet():
    # KerasHub's ResNet wants 64 filters in the first stack; a bottleneck block
    # with an 8-filter stem is the smallest (58,616 parameters).
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[8], input_conv_kernel_sizes=[3], stackwise_num_filters=[64],
        stackwise_num_blocks=[1], stackwise_num_strides=[1], block_type="bottleneck_block",
        image_shape=(SIZE, SIZE, 3),
    )


def tiny_vit():
    return keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=4, num_layers=VIT_LAYERS, num_heads=VIT_HEADS,
        hidden_dim=VIT_HIDDEN, mlp_dim=32,
    )


def converter():
    return keras_hub.layers.ImageConverter(image_size=(SIZE, SIZE), scale=1.0 / 255)


def save(backbone, path, with_converter=True):
    keras.utils.set_random_seed(3)
    backbone.save_to_preset(str(path))
    if with_converter:
        converter().save_to_preset(str(path))
    return str(path)


@pytest.fixture(scope="session")
def resnet_preset(tmp_path_factory):
    keras.utils.set_random_seed(5)
    return save(tiny_resnet(), tmp_path_factory.mktemp("tiny_resnet"))


@pytest.fixture(scope="session")
def vit_preset(tmp_path_factory):
    keras.utils.set_random_seed(6)
    return save(tiny_vit(), tmp_path_factory.mktemp("tiny_vit"))


def images(n=16, seed=0, size=SIZE):
    """Made-up uint8 images with two labels: bright or dark (binary) and which third is reddest (3-way)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, size, size, 3)).astype("uint8")
    bright = rng.integers(2, size=n)
    x[bright == 1] = np.minimum(x[bright == 1].astype(int) + 80, 255).astype("uint8")
    third = rng.integers(3, size=n)
    for i, k in enumerate(third):
        x[i, :, k * size // 3:(k + 1) * size // 3, 0] = 255
    return x, {"bright": np.float32(bright), "third": np.int64(third)}


def two_tasks():
    return [tasks.Binary("bright"), tasks.Multiclass("third", num_classes=3)]


def build(preset, architecture=mtl.models.shared_bottom, task_list=None, input_dtype="uint8", **trunk_kwargs):
    return architecture(keras.Input((SIZE, SIZE, 3), dtype=input_dtype, name="image"), task_list or two_tasks(),
                        trunk=trunks.pretrained(preset, **trunk_kwargs))


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def encoder_and_heads(model):
    encoder = model.get_layer("trunk")
    heads = [w for w in model.trainable_weights if not any(w is v for v in encoder.weights)]
    return encoder, heads


# ------------------------------------------------------------ what is built


def test_image_backbones_are_told_from_text_ones(resnet_preset, vit_preset, tmp_path):
    assert _pretrained_image.is_image_backbone(resnet_preset) and _pretrained_image.is_image_backbone(vit_preset)
    assert _pretrained_image.is_image_backbone(tiny_vit())
    bert = keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=4,
                                         intermediate_dim=4, max_sequence_length=4)
    assert not _pretrained_image.is_image_backbone(bert)
    assert not _pretrained_image.is_image_backbone(save(bert, tmp_path / "bert", with_converter=False))
    assert not _pretrained_image.is_image_backbone("resnet_50_imagenet")  # a name: the text path's error
    rep = trunks.pretrained(vit_preset)(keras.Input((SIZE, SIZE, 3)))
    assert list(rep) == ["pooled"] and rep["pooled"].shape == (None, VIT_HIDDEN)


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_trainable_parameters_per_mode(kind, resnet_preset, vit_preset):
    preset, backbone_params = {"resnet": (resnet_preset, 58_616), "vit": (vit_preset, 3_328)}[kind]
    modes = ("frozen", "full") + (("lora",) if kind == "vit" else ())
    found = {}
    for train in modes:
        encoder, heads = encoder_and_heads(build(preset, train=train, lora_rank=4))
        original = [w for w in encoder.weights if "lora_kernel" not in w.path]
        found[train] = (count(encoder.trainable_weights), count(original), count(heads))
    assert found["frozen"][1] == backbone_params == {"resnet": tiny_resnet, "vit": tiny_vit}[kind]().count_params()
    assert found["frozen"][0] == 0 and found["frozen"][2] > 0
    if kind == "resnet":
        # Batch-norm moving statistics are weights but never trainable.
        non_trainable = count(w for w in tiny_resnet().weights if "moving" in w.path)
        assert found["full"][0] == backbone_params - non_trainable
    else:
        assert found["full"][0] == backbone_params
        # Keras' LoRA on each attention layer's query and value kernels (hidden, heads, hidden // heads):
        # A is (hidden, heads, rank), B is (rank, hidden // heads); nothing else, not even their biases.
        rank = 4
        lora = VIT_LAYERS * 2 * (VIT_HIDDEN * VIT_HEADS * rank + rank * VIT_HIDDEN // VIT_HEADS)
        assert found["lora"][0] == lora == 320 and found["lora"][1] == backbone_params
        encoder, _ = encoder_and_heads(build(preset, train="lora", lora_rank=rank))
        assert {w.path.split("/")[-2] for w in encoder.trainable_weights} == {"query", "value"}
    assert len({v[2] for v in found.values()}) == 1  # the same heads whatever trains


@pytest.mark.parametrize("kind, train", [("resnet", "frozen"), pytest.param("vit", "lora", marks=pytest.mark.slow)])
def test_fit_trains_two_tasks_and_leaves_the_original_weights_bit_identical(kind, train, resnet_preset, vit_preset, tmp_path):
    x, y = images(16)
    model = build({"resnet": resnet_preset, "vit": vit_preset}[kind], train=train)
    encoder, heads = encoder_and_heads(model)
    before = {w.path: w.numpy().copy() for w in encoder.weights}
    heads_before = [w.numpy().copy() for w in heads]
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert {"bright_loss", "third_loss"} <= set(history)
    moved = {w.path for w in encoder.weights if not np.array_equal(before[w.path], w.numpy())}
    # Frozen batch norm included: its moving statistics do not move either.
    assert {p for p in moved if "lora_kernel" not in p} == set()
    if train == "lora":
        assert moved == {w.path for w in encoder.trainable_weights} and len(moved) == VIT_LAYERS * 2 * 2
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(heads_before, heads))
    loaded = assert_keras_round_trip(model, x, tmp_path)
    if train == "lora":
        assert_adapters_train_again(loaded, x, y)


def assert_keras_round_trip(model, x, tmp_path):
    """The text tests' round trip (equal outputs, training mode, trainable set), and the same pooling and converter."""
    from test_pretrained import assert_keras_round_trip as text_round_trip

    loaded = text_round_trip(model, x, tmp_path)
    for key in ("pooling", "lora_rank", "converter"):
        assert loaded.get_layer("trunk").get_config()[key] == model.get_layer("trunk").get_config()[key], key
    return loaded


def representation(model):
    return keras.Model(model.input, model.get_layer("representation").output)


@pytest.mark.parametrize("pooling", [None, "mean", "avg", "max"])
def test_feature_map_pooling(resnet_preset, pooling):
    x, _ = images(4)
    model = build(resnet_preset, pooling=pooling, task_list=[tasks.Regression("r")])
    encoder = model.get_layer("trunk")
    features = encoder.backbone(converter()(x.astype("float32")), training=False)
    pool = np.max if pooling == "max" else np.mean
    assert encoder.pooling == (pooling or "mean")
    np.testing.assert_allclose(representation(model)(x), pool(features, axis=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("pooling", [None, "cls", "mean", "max"])
def test_token_pooling(vit_preset, pooling):
    x, _ = images(4)
    model = build(vit_preset, pooling=pooling, task_list=[tasks.Regression("r")])
    encoder = model.get_layer("trunk")
    tokens = np.asarray(encoder.backbone(converter()(x.astype("float32")), training=False))
    assert tokens.shape == (4, 1 + (SIZE // 4) ** 2, VIT_HIDDEN)
    expected = {None: tokens[:, 0], "cls": tokens[:, 0],  # the class token
                "mean": tokens[:, 1:].mean(axis=1), "max": tokens[:, 1:].max(axis=1)}[pooling]  # patches only
    np.testing.assert_allclose(representation(model)(x), expected, atol=1e-5)


def test_raw_uint8_and_float_images_and_other_sizes(vit_preset):
    x, _ = images(4)
    uint8_model = build(vit_preset, task_list=[tasks.Regression("r")])
    float_model = build(vit_preset, task_list=[tasks.Regression("r")], input_dtype="float32")
    float_model.set_weights(uint8_model.get_weights())
    np.testing.assert_allclose(uint8_model(x)["r"], float_model(x.astype("float32"))["r"], atol=1e-6)
    # The converter resizes, so the model takes images of any size.
    trunk = trunks.pretrained(vit_preset)
    model = mtl.models.shared_bottom(keras.Input((None, None, 3), dtype="uint8"), [tasks.Regression("r")], trunk=trunk)
    big, _ = images(2, size=24)
    assert model(big)["r"].shape == (2, 1)


def test_converter_from_an_object_a_preset_or_none(vit_preset, tmp_path):
    x, _ = images(2)
    backbone = keras_hub.models.Backbone.from_preset(vit_preset)
    # A backbone object without preprocessor=: images reach it as they are (cast to float).
    encoder = _pretrained_image.PretrainedImageEncoder(backbone)
    assert encoder.converter is None
    np.testing.assert_allclose(encoder(x)["pooled"], backbone(x.astype("float32"))[:, 0], atol=1e-6)
    # Given as an ImageConverter, as a KerasHub preprocessor holding one, or as a preset directory.
    mine = keras_hub.layers.ImageConverter(image_size=(SIZE, SIZE), scale=1.0 / 127.5, offset=-1.0)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=mine)
    for given in (mine, preprocessor):
        trunk = trunks.pretrained(keras_hub.models.Backbone.from_preset(vit_preset), preprocessor=given)
        model = mtl.models.shared_bottom(keras.Input((SIZE, SIZE, 3), dtype="uint8"), [tasks.Regression("r")], trunk=trunk)
        assert model.get_layer("trunk").converter is mine
    plain = save(tiny_vit(), tmp_path / "no_converter", with_converter=False)
    assert build(plain, task_list=[tasks.Regression("r")]).get_layer("trunk").converter is None
    loaded = build(plain, preprocessor=vit_preset, task_list=[tasks.Regression("r")]).get_layer("trunk").converter
    assert loaded.image_size == (SIZE, SIZE) and loaded.scale == pytest.approx(1 / 255)


# ------------------------------------------------------------ bad inputs


def test_lora_on_a_resnet_names_it(resnet_preset):
    with pytest.raises(ValueError, match=r"train='lora' but backbone 'res_net_backbone.*' \(ResNetBackbone\) has no LoRA-capable layers"):
        build(resnet_preset, train="lora")


def test_task_lora_is_refused_for_images(vit_preset):
    with pytest.raises(ValueError, match="train='task_lora' is for text encoders for now"):
        trunks.pretrained(vit_preset, train="task_lora")


def test_missing_preset_directory_is_named(tmp_path):
    missing = str(tmp_path / "no_such_resnet")
    with pytest.raises(ValueError, match=f"preset directory '{missing}' does not exist"):
        trunks.pretrained(missing)
    with pytest.raises(ValueError, match=f"image converter preset directory '{missing}' does not exist"):
        trunks.pretrained(tiny_vit(), preprocessor=missing)


def test_tagging_task_is_refused_naming_it(vit_preset):
    with pytest.raises(ValueError, match=r"Task 'tags' \(Tagging\) needs per-token features"):
        build(vit_preset, task_list=[tasks.Binary("bright"), tasks.Tagging("tags", num_tags=3)])


def test_other_bad_arguments_are_named(resnet_preset, vit_preset):
    with pytest.raises(ValueError, match=r"pooling='cls' but backbone .*ResNetBackbone.* feature map .*use pooling='mean'"):
        build(resnet_preset, pooling="cls")
    with pytest.raises(ValueError, match=r"pooling must be one of \['cls', 'mean', 'avg', 'max'\], got 'sum'"):
        trunks.pretrained(vit_preset, pooling="sum")
    with pytest.raises(ValueError, match="sequence_length=8 is for text encoders"):
        trunks.pretrained(vit_preset, sequence_length=8)
    with pytest.raises(ValueError, match="takes raw images .*got dtype string"):
        trunks.pretrained(vit_preset)(keras.Input((), dtype="string"))
    with pytest.raises(ValueError, match="images have 1 channels but backbone 'vi_t_backbone.*' .*takes 3"):
        trunks.pretrained(vit_preset)(keras.Input((SIZE, SIZE, 1)))
    with pytest.raises(ValueError, match=r"images are \(24, 24\) but backbone .* takes images of \(16, 16\).*ImageConverter"):
        trunks.pretrained(tiny_vit())(keras.Input((24, 24, 3)))
    with pytest.raises(ValueError, match=r"converter resizes to \(8, 8\) but backbone .* takes images of \(16, 16\)"):
        trunks.pretrained(tiny_vit(), preprocessor=keras_hub.layers.ImageConverter(image_size=(8, 8)))(keras.Input((SIZE, SIZE, 3)))
    with pytest.raises(TypeError, match="preprocessor must be a keras_hub.layers.ImageConverter.*got dict"):
        trunks.pretrained(tiny_vit(), preprocessor={"scale": 1})(keras.Input((SIZE, SIZE, 3)))
    with pytest.raises(ValueError, match="takes one image input; got inputs"):
        trunks.pretrained(tiny_vit())({"a": keras.Input((SIZE, SIZE, 3)), "b": keras.Input((SIZE, SIZE, 3))})


def test_a_backbone_neither_text_nor_image_is_named():
    audio = keras.Input((None, 8), name="audio")
    plain = keras_hub.models.Backbone(inputs=audio, outputs=keras.layers.Dense(4)(audio), name="audio_encoder")
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=4)
    with pytest.raises(ValueError, match="backbone 'audio_encoder' .* trunks.pretrained takes text encoders and image backbones"):
        trunks.pretrained(plain, preprocessor=preprocessor)(keras.Input((), dtype="string"))


def test_a_preset_config_without_image_shape_goes_to_the_text_path(tmp_path):
    # A directory whose config.json names no image backbone is checked as a text preset and named.
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"registered_name": "keras_hub>BertTokenizer", "config": {}}))
    with pytest.raises(ValueError, match=f"'{odd}' is not a KerasHub backbone preset .*BertTokenizer"):
        trunks.pretrained(str(odd))


# ------------------------------------------------------------ slow tier


@pytest.mark.slow
@pytest.mark.parametrize("kind, train", [("resnet", "full"), ("vit", "lora")])
def test_two_tasks_train_with_shared_bottom_and_mmoe(kind, train, resnet_preset, vit_preset):
    x, y = images(32)
    preset = {"resnet": resnet_preset, "vit": vit_preset}[kind]
    for architecture in (mtl.models.shared_bottom, mtl.models.mmoe):
        model = build(preset, architecture=architecture, train=train)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        history = model.fit(x, y, batch_size=8, epochs=4, verbose=0).history
        assert history["loss"][-1] < history["loss"][0], architecture.__name__


@pytest.mark.slow
def test_keras_round_trip_in_full_mode(resnet_preset, tmp_path):
    x, y = images(8)
    model = build(resnet_preset, train="full")
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)  # batch-norm statistics move and are saved
    assert_keras_round_trip(model, x, tmp_path)


@pytest.mark.slow
def test_export_takes_raw_uint8_images_and_verifies(vit_preset, tmp_path):
    x, y = images(16)
    model = build(vit_preset, train="lora")
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = mtl.export.export_saved_model(model, tmp_path / "serving")
    assert mtl.export.client.feature_specs(path)["image"].dtype.name == "uint8"
    # verify loads it in a fresh process the way TF Serving does and raises if any
    # signature's outputs differ from the Keras model's by more than 1e-5.
    report = mtl.export.verify(path, {"image": x[:8]}, model)
    assert report["samples"] == 8 and report["max_abs_diff"] < 1e-5
    assert {"serving_default", "predict_bright", "predict_third"} <= set(report["signatures"])


@pytest.mark.slow
def test_two_devices_equal_one(vit_preset):
    from test_distributed import assert_exact_on_two_devices

    x, y = images(32)
    assert_exact_on_two_devices(
        lambda: build(vit_preset, train="lora"), x, y, ["loss", "bright_loss", "third_loss"]
    )
