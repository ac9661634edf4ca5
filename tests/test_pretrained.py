"""trunks.pretrained: a KerasHub backbone (a tiny BERT the tests build and save as a local preset) as the trunk."""

import json

import keras
import numpy as np
import pytest

import keras_mtl as mtl
from keras_mtl import tasks, trunks

keras_hub = pytest.importorskip("keras_hub")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a cat dog sat ran on mat good bad movie film was great awful plot fun dull".split()
)
HIDDEN, LAYERS, T = 32, 2, 8


def tiny_bert(max_sequence_length=16):
    return keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB), num_layers=LAYERS, num_heads=2, hidden_dim=HIDDEN,
        intermediate_dim=64, max_sequence_length=max_sequence_length, dropout=0.0,
    )


@pytest.fixture(scope="session")
def preset(tmp_path_factory):
    """A local preset directory: the backbone's config and weights and the tokenizer's vocabulary."""
    keras.utils.set_random_seed(7)
    path = tmp_path_factory.mktemp("tiny_bert_preset")
    tiny_bert().save_to_preset(str(path))
    keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True).save_to_preset(str(path))
    return str(path)


def sentences(n=32, seed=0):
    """Made-up reviews with two labels each: sentiment (binary) and a 3-way topic."""
    rng = np.random.default_rng(seed)
    good, bad, topic_words = ["good", "great", "fun"], ["bad", "awful", "dull"], ["cat", "dog", "movie"]
    text, sentiment, topic = [], [], []
    for _ in range(n):
        s, k = rng.integers(2), rng.integers(3)
        words = [rng.choice(good if s else bad), "the", topic_words[k], rng.choice(["sat", "ran", "was"])]
        text.append(" ".join(rng.permutation(words)))
        sentiment.append(float(s))
        topic.append(k)
    return np.asarray(text, dtype=object), {"sentiment": np.float32(sentiment), "topic": np.int64(topic)}


def two_tasks():
    return [tasks.Binary("sentiment"), tasks.Multiclass("topic", num_classes=3)]


def build(preset, architecture=mtl.models.shared_bottom, task_list=None, **trunk_kwargs):
    trunk_kwargs.setdefault("sequence_length", T)
    return architecture(keras.Input((), dtype="string", name="text"), task_list or two_tasks(),
                        trunk=trunks.pretrained(preset, **trunk_kwargs))


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def lora_param_count(rank):
    # Per layer, Keras' LoRA on the query and value EinsumDense kernels
    # (HIDDEN, heads, HIDDEN // heads): A is (HIDDEN, heads, rank), B is (rank, HIDDEN // heads).
    heads = 2
    return LAYERS * 2 * (HIDDEN * heads * rank + rank * HIDDEN // heads)


def test_trainable_parameters_per_mode(preset):
    found = {}
    for train in ("frozen", "lora", "full"):
        model = build(preset, train=train, lora_rank=4)
        encoder = model.get_layer("trunk")
        original = [w for w in encoder.weights if "lora_kernel" not in w.path]
        heads = [w for w in model.trainable_weights if not any(w is v for v in encoder.weights)]
        found[train] = (count(model.trainable_weights), count(encoder.trainable_weights), count(original), count(heads))
    backbone = found["frozen"][2]
    head_params = found["frozen"][3]
    assert backbone == tiny_bert().count_params() == 19_520
    assert found["frozen"][:2] == (head_params, 0)
    assert found["full"][:2] == (backbone + head_params, backbone)
    # LoRA: the low-rank kernels and nothing else of the backbone, not even the adapted layers' biases.
    lora = found["lora"][1]
    assert lora == lora_param_count(4) == 1_280 and found["lora"][0] == lora + head_params
    assert found["lora"][2] == backbone  # the original weights are all still there, frozen
    # Rank 4 on this 32-wide BERT is 6.6% of it; the fraction shrinks with width (rank 4 on BERT-base: 0.1%).
    assert lora / backbone == pytest.approx(0.0656, abs=1e-4)
    lora_weights = [w.path for w in model_lora_weights(build(preset, train="lora", lora_rank=4))]
    assert len(lora_weights) == LAYERS * 2 * 2 and all("lora_kernel" in p for p in lora_weights)
    assert {p.split("/")[-2] for p in lora_weights} == {"query", "value"}


def model_lora_weights(model):
    return model.get_layer("trunk").trainable_weights


@pytest.mark.parametrize("train", [pytest.param("frozen", marks=pytest.mark.slow), "lora"])
def test_fit_trains_two_tasks_and_leaves_the_original_weights_bit_identical(preset, train, tmp_path):
    x, y = sentences(16)
    model = build(preset, train=train)
    encoder = model.get_layer("trunk")
    before = {w.path: w.numpy().copy() for w in encoder.weights}
    heads = [w for w in model.trainable_weights if not any(w is v for v in encoder.weights)]
    heads_before = [w.numpy().copy() for w in heads]
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert {"sentiment_loss", "topic_loss"} <= set(history)
    moved = {w.path for w in encoder.weights if not np.array_equal(before[w.path], w.numpy())}
    originals_moved = {p for p in moved if "lora_kernel" not in p}
    assert originals_moved == set()
    if train == "lora":
        assert moved == {w.path for w in encoder.trainable_weights} and len(moved) == LAYERS * 2 * 2
    assert heads and all(not np.array_equal(a, w.numpy()) for a, w in zip(heads_before, heads))
    loaded = assert_keras_round_trip(model, x, tmp_path)
    if train == "lora":
        assert_adapters_train_again(loaded, x, y)


def assert_adapters_train_again(loaded, x, y):
    """Keras loads both LoRA kernels as zeros, where no gradient reaches them; they must train again."""
    adapters = loaded.get_layer("trunk").trainable_weights
    assert all(np.any(w.numpy() != 0) for w in adapters if w.path.endswith("lora_kernel_a"))
    before = [w.numpy().copy() for w in adapters]
    loaded.compile(optimizer=keras.optimizers.Adam(0.01))
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, adapters))


def assert_keras_round_trip(model, x, tmp_path):
    """Saved to .keras and loaded: equal outputs, the same training mode and trainable set."""
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected, got = model(x), loaded(x)  # eager: no predict function to trace
    for key in expected:
        np.testing.assert_array_equal(expected[key], got[key])
    # With LoRA: the adapters (merged into the saved kernels, restarted at zero) and the heads.
    assert [w.path for w in loaded.trainable_weights] == [w.path for w in model.trainable_weights]
    assert loaded.get_layer("trunk").get_config()["train"] == model.get_layer("trunk").get_config()["train"]
    return loaded


def test_tagging_reads_the_per_token_output(preset):
    task_list = [tasks.Binary("sentiment"), tasks.Tagging("tags", num_tags=3)]
    model = build(preset, task_list=task_list, train="lora", pooling="mean")
    assert model.output["tags"].shape == (None, T, 3) and model.output["sentiment"].shape == (None, 1)
    assert "representation_sequence" in [layer.name for layer in keras.Model(model.inputs, model.output["tags"]).layers]


@pytest.mark.slow
def test_tagging_trains_on_word_piece_labels(preset):
    x, y = sentences(16)
    task_list = [tasks.Binary("sentiment"), tasks.Tagging("tags", num_tags=3)]
    model = build(preset, task_list=task_list, train="lora", pooling="mean")
    tags = np.full((16, T), -1, dtype="int64")
    tags[:, 1:4] = np.arange(3)  # word pieces after [CLS]; padding and the rest unlabelled
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    logs = model.train_on_batch(x, {"sentiment": y["sentiment"], "tags": tags}, return_dict=True)
    assert np.isfinite(logs["tags_loss"]) and logs["tags_loss"] > 0


def test_mean_pooling_ignores_padding(preset):
    # One text alone and next to a much longer one pads differently; the mean over real tokens must not change.
    model = build(preset, train="frozen", pooling="mean", task_list=[tasks.Regression("r")])
    rep = keras.Model(model.input, model.get_layer("representation").output)
    short = "good cat"
    alone = rep(np.asarray([short], dtype=object))
    padded = rep(np.asarray([short, "the dog ran on the mat was fun"], dtype=object))
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-6)
    assert not np.allclose(padded[0], padded[1], atol=1e-3)


def test_backbone_and_preprocessor_objects(preset):
    backbone = keras_hub.models.Backbone.from_preset(preset)
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(preset)
    trunk = trunks.pretrained(backbone, preprocessor=preprocessor, sequence_length=6, train="full")
    rep = trunk(keras.Input((1,), dtype="string"))  # a (batch, 1) column works as well as (batch,)
    assert rep["sequence"].shape == (None, 6, HIDDEN) and rep["pooled"].shape == (None, HIDDEN)
    assert backbone.trainable and preprocessor.sequence_length == 6


# ------------------------------------------------------------ bad inputs


def test_missing_preset_directory_is_named(tmp_path):
    missing = str(tmp_path / "no_such_preset")
    with pytest.raises(ValueError, match=f"preset directory '{missing}' does not exist"):
        trunks.pretrained(missing)


def test_directory_that_is_not_a_backbone_preset_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"'{empty}' is not a KerasHub backbone preset .*no config.json"):
        trunks.pretrained(str(empty))
    tokenizer_only = tmp_path / "tokenizer_only"
    tokenizer_only.mkdir()
    (tokenizer_only / "config.json").write_text(json.dumps({"registered_name": "keras_hub>BertTokenizer"}))
    with pytest.raises(ValueError, match=f"'{tokenizer_only}' is not a KerasHub backbone preset .*BertTokenizer"):
        trunks.pretrained(str(tokenizer_only))


def test_named_preset_offline_error_names_it_and_says_what_to_do():
    trunk = trunks.pretrained("no_such_preset_xyz")
    with pytest.raises(ValueError, match="(?s)named preset 'no_such_preset_xyz'.*need the network.*save_to_preset"):
        trunk(keras.Input((), dtype="string"))


def test_lora_on_a_backbone_without_lora_layers_names_it(preset):
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="bool", name="padding_mask")
    segments = keras.Input((None,), dtype="int32", name="segment_ids")
    sequence = keras.layers.Dense(8, name="mixer")(keras.layers.Embedding(len(VOCAB), 8)(ids))
    plain = keras_hub.models.Backbone(
        inputs={"token_ids": ids, "padding_mask": mask, "segment_ids": segments},
        outputs={"sequence_output": sequence}, name="plain_encoder",
    )
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(preset)
    with pytest.raises(ValueError, match="backbone 'plain_encoder' .* has no LoRA-capable layers"):
        trunks.pretrained(plain, preprocessor=preprocessor, train="lora")(keras.Input((), dtype="string"))


def test_other_bad_arguments_are_named(preset):
    text = keras.Input((), dtype="string")
    with pytest.raises(ValueError, match="train must be one of .* got 'adapters'"):
        trunks.pretrained(preset, train="adapters")
    with pytest.raises(ValueError, match="pooling must be one of .* got 'max'"):
        trunks.pretrained(preset, pooling="max")
    with pytest.raises(ValueError, match="lora_rank must be a positive int, got 0"):
        trunks.pretrained(preset, lora_rank=0)
    with pytest.raises(ValueError, match="sequence_length 64 is longer than backbone .* max_sequence_length 16"):
        trunks.pretrained(preset, sequence_length=64)(text)
    # The preprocessor's own default (KerasHub's 512) is checked the same way.
    with pytest.raises(ValueError, match="sequence_length 512 is longer .* pass sequence_length="):
        trunks.pretrained(preset)(text)
    with pytest.raises(ValueError, match="takes raw strings.*got dtype float32"):
        trunks.pretrained(preset)(keras.Input((3,)))
    backbone = keras_hub.models.Backbone.from_preset(preset)
    with pytest.raises(ValueError, match="backbone 'bert_backbone.*' is an object.*pass preprocessor="):
        trunks.pretrained(backbone)
    backbone.enable_lora(2)
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(preset)
    with pytest.raises(ValueError, match="already has LoRA enabled"):
        trunks.pretrained(backbone, preprocessor=preprocessor, train="lora", sequence_length=T)(text)


def test_tagging_labels_longer_than_the_sequence_are_refused(preset):
    x, y = sentences(8)
    model = build(preset, task_list=[tasks.Tagging("tags", num_tags=3)])
    model.compile(optimizer="adam")
    # The preprocessor packs to T word pieces; labels padded to another length are named with both shapes.
    with pytest.raises(ValueError, match=r"Task 'tags': labels of shape \(None, 10\) do not fit its output of shape \(None, 8, 3\)"):
        model.fit(x, {"tags": np.zeros((8, T + 2), "int64")}, epochs=1, verbose=0)


# ------------------------------------------------------------ slow tier


@pytest.mark.slow
def test_full_fine_tuning_and_mmoe_train(preset):
    x, y = sentences()
    for architecture, train in ((mtl.models.mmoe, "lora"), (mtl.models.shared_bottom, "full")):
        model = build(preset, architecture=architecture, train=train)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        history = model.fit(x, y, batch_size=8, epochs=4, verbose=0).history
        assert history["loss"][-1] < history["loss"][0], architecture.__name__


@pytest.mark.slow
def test_gradient_weighting_on_the_adapters_or_on_the_representation(preset):
    # With LoRA the adapters are the shared variables; a frozen trunk has none, so
    # gradient methods work on the shared representation (mode="representation").
    x, y = sentences(16)
    for train, method in (("lora", mtl.weighting.get("pcgrad")),
                          ("frozen", mtl.weighting.get("pcgrad", mode="representation"))):
        model = build(preset, train=train)
        model.compile(optimizer=keras.optimizers.Adam(0.01), weighting=method)
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history
        task_losses = np.add(history["sentiment_loss"], history["topic_loss"])
        assert task_losses[-1] < task_losses[0], train
        assert model.shared_layers == (["trunk"] if train == "lora" else [])


@pytest.mark.slow
def test_full_mode_with_mean_pooling_freezes_the_unread_pooler(preset):
    x, y = sentences(8)
    model = build(preset, train="full", pooling="mean")
    encoder = model.get_layer("trunk")
    assert not encoder.backbone.get_layer("pooled_dense").trainable
    assert count(encoder.trainable_weights) == tiny_bert().count_params() - (HIDDEN * HIDDEN + HIDDEN)
    assert build(preset, train="full").get_layer("trunk").backbone.get_layer("pooled_dense").trainable  # cls reads it
    model.compile(optimizer="adam")
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Gradients do not exist")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)


@pytest.mark.slow
def test_keras_round_trip_in_full_mode(preset, tmp_path):
    x, _ = sentences(8)
    assert_keras_round_trip(build(preset, train="full", pooling="mean"), x, tmp_path)  # the pooler frozen again


@pytest.mark.slow
def test_export_takes_raw_strings_and_verifies(preset, tmp_path):
    x, y = sentences(16)
    model = build(preset, train="lora")
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = mtl.export.export_saved_model(model, tmp_path / "serving")
    from keras_mtl.export.op_lint import lint

    ops = lint(path)
    assert ops["tensorflow_text"], "the tokenizer should run tensorflow-text ops"
    # verify loads it in a fresh process the way TF Serving does (tf-text ops included)
    # and raises if any signature's outputs differ from the Keras model's by more than 1e-5.
    report = mtl.export.verify(path, {"text": x[:8]}, model)
    assert report["samples"] == 8 and report["max_abs_diff"] < 1e-5
    assert {"serving_default", "predict_sentiment", "predict_topic"} <= set(report["signatures"])


@pytest.mark.slow
def test_two_devices_equal_one(preset):
    from test_distributed import assert_exact_on_two_devices

    # Keras 3.15's fit all-reduces a first batch to learn its shapes, which fails on
    # string features (AddN of strings) under MirroredStrategy too; keras_mtl's fix
    # for multi-worker fit takes the first replica's batch instead.
    mtl.distribute.apply_keras_multi_worker_fix()
    x, y = sentences(32)
    assert_exact_on_two_devices(
        lambda: build(preset, train="lora"), x, y, ["loss", "sentiment_loss", "topic_loss"]
    )

