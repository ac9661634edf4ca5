"""trunks.pretrained(train="task_lora"): each task its own LoRA adapters on one frozen backbone."""

import keras
import numpy as np
import pytest

import keras_mtl as mtl
from keras_mtl import _compat, tasks, trunks
from test_pretrained import LAYERS, T, VOCAB, build, count, lora_param_count, preset, sentences, two_tasks  # noqa: F401

keras_hub = pytest.importorskip("keras_hub")


def task_lora(preset, task_list=None, **kwargs):
    return build(preset, task_list=task_list, train="task_lora", **kwargs)


def task_features(model, task):
    """A model from the input to what `task`'s head reads (its own pass through the encoder)."""
    return keras.Model(model.input, model.get_layer(task).input)


def test_each_task_has_its_own_adapters_and_nothing_else_of_the_backbone_trains(preset):
    model = task_lora(preset, lora_rank=4)
    per_layer = {layer.name: count(layer.trainable_weights) for layer in model.layers}
    # The same adapters Keras' LoRA puts on the query and value projections, once per task.
    assert per_layer["sentiment_lora"] == per_layer["topic_lora"] == lora_param_count(4) == 1_280
    assert per_layer["trunk"] == 0 and not model.get_layer("trunk").backbone.trainable
    heads = per_layer["sentiment"] + per_layer["topic"]
    assert count(model.trainable_weights) == 2 * 1_280 + heads
    # No layer with trainable weights is on every task's path: each task's output depends on its adapters only.
    assert model.shared_layers == [] and model.representation is None
    from keras_mtl.models._build import layers_per_output

    own = {key: {layer.name for layer in layers} for key, layers in layers_per_output(model.input, model.output).items()}
    assert "topic_lora" not in own["sentiment"] and "sentiment_lora" not in own["topic"]


def test_a_task_pass_equals_keras_lora_with_the_same_adapters(preset):
    # Hand-checkable reference: Keras' own LoRA (kernel + A @ B on each query/value projection)
    # on a fresh copy of the backbone, given task "sentiment"'s A and B, must give the same
    # pooled vector as the sentiment pass; the topic pass (B still zero) the frozen backbone's.
    x, _ = sentences(8)
    model = task_lora(preset, lora_rank=2)
    rng = np.random.default_rng(0)
    adapters = model.get_layer("sentiment_lora")
    for a, b in adapters.kernels:
        b.assign(rng.normal(scale=0.5, size=b.shape).astype("float32"))
    encoder = model.get_layer("trunk")
    packed = encoder.preprocessor(keras.ops.convert_to_tensor(x))

    reference = keras_hub.models.Backbone.from_preset(preset)
    frozen_pooled = reference(packed)["pooled_output"]
    reference.enable_lora(2)
    targets = [layer for layer in _compat.sublayers(reference) if getattr(layer, "lora_enabled", False)]
    assert len(targets) == len(adapters.kernels) == LAYERS * 2
    for layer, (a, b) in zip(targets, adapters.kernels):
        layer.lora_kernel_a.assign(a.numpy())
        layer.lora_kernel_b.assign(b.numpy())
    lora_pooled = reference(packed)["pooled_output"]

    np.testing.assert_allclose(task_features(model, "sentiment")(x), lora_pooled, atol=1e-5)
    np.testing.assert_allclose(task_features(model, "topic")(x), frozen_pooled, atol=1e-5)
    assert np.abs(np.asarray(lora_pooled) - np.asarray(frozen_pooled)).max() > 1e-3


def test_training_one_task_leaves_the_other_bit_identical(preset):
    x, y = sentences(16)
    model = task_lora(preset)
    encoder = model.get_layer("trunk")
    backbone_before = [w.numpy().copy() for w in encoder.weights]
    topic_layers = [model.get_layer("topic_lora"), model.get_layer("topic")]
    topic_before = [w.numpy().copy() for layer in topic_layers for w in layer.weights]
    sentiment_before = [w.numpy().copy() for w in model.get_layer("sentiment_lora").weights]
    topic_out = model.predict(x, verbose=0)["topic"]
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    # Only sentiment labels: topic's are all missing.
    with pytest.warns(UserWarning, match="Task 'topic' has no labels"):
        history = model.fit(x, {"sentiment": y["sentiment"], "topic": np.full(16, -1)}, batch_size=8, epochs=3, verbose=0).history
    assert history["sentiment_loss"][-1] < history["sentiment_loss"][0]
    np.testing.assert_array_equal(model.predict(x, verbose=0)["topic"], topic_out)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(topic_before, [w for layer in topic_layers for w in layer.weights]))
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(backbone_before, encoder.weights))
    # Sentiment's B kernels left zero, so its A kernels' gradient is nonzero from the second step on.
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(sentiment_before, model.get_layer("sentiment_lora").weights))


@pytest.mark.slow
def test_keras_round_trip_and_the_tokens_are_computed_once(preset, tmp_path):
    x, y = sentences(16)
    model = task_lora(preset)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected, got = model(x), loaded(x)
    for key in expected:
        np.testing.assert_array_equal(expected[key], got[key])
    assert [w.path for w in loaded.trainable_weights] == [w.path for w in model.trainable_weights]
    assert loaded.get_layer("trunk").train == "task_lora" and loaded.representation is None

    # One tokenization per batch for all tasks' passes.
    import tensorflow as tf

    calls = []
    _compat.wrap_call(loaded.get_layer("trunk").preprocessor, lambda call: lambda *a, **k: calls.append(1) or call(*a, **k))
    tf.function(loaded)(tf.constant(x[:4]))
    assert len(calls) == 1


@pytest.mark.slow
def test_extend_adds_only_the_new_tasks_adapters_and_head(preset, tmp_path):
    x, y = sentences(16)
    model = task_lora(preset)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    old = model.predict(x, verbose=0)
    extended = mtl.models.extend(model, [tasks.Binary("long")])
    trainable = {layer.name: count(layer.trainable_weights) for layer in extended.layers if layer.trainable_weights}
    assert trainable == {"long_lora": lora_param_count(4), "long": 33}
    extended.compile(optimizer=keras.optimizers.Adam(0.01))
    labels = dict(y, long=np.float32([len(s) > 20 for s in x]))
    extended.fit(x, labels, batch_size=8, epochs=2, verbose=0)
    new = extended.predict(x, verbose=0)
    for key in old:
        np.testing.assert_array_equal(new[key], old[key])
    extended.save(tmp_path / "extended.keras")
    loaded = keras.saving.load_model(tmp_path / "extended.keras")
    got = loaded(x)
    for key in new:
        np.testing.assert_allclose(got[key], new[key], atol=1e-6)
    with pytest.raises(ValueError, match="task 'sentiment_x' needs adapters named 'sentiment_x_lora'"):
        clash = task_lora(preset, task_list=[tasks.Binary("sentiment_x_lora"), tasks.Binary("b")])
        mtl.models.extend(clash, [tasks.Binary("sentiment_x")])


def test_architectures_that_mix_one_representation_refuse_it(preset):
    for architecture in (mtl.models.mmoe, mtl.models.cross_stitch):
        with pytest.raises(ValueError, match="train='task_lora'.*use it with models.shared_bottom or models.single_task"):
            task_lora(preset, architecture=architecture)
    single = mtl.models.single_task(keras.Input((), dtype="string"), tasks.Binary("sentiment"),
                                    trunks.pretrained(preset, train="task_lora", sequence_length=T))
    assert {layer.name for layer in single.layers if layer.trainable_weights} == {"sentiment_lora", "sentiment"}


def test_adapted_layers_must_be_linear_projections(preset):
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="bool", name="padding_mask")
    segments = keras.Input((None,), dtype="int32", name="segment_ids")
    embedded = keras.layers.Embedding(len(VOCAB), 8)(ids)
    query = keras.layers.Dense(8, activation="relu", name="query")(embedded)  # a LoRA target by name
    odd = keras_hub.models.Backbone(
        inputs={"token_ids": ids, "padding_mask": mask, "segment_ids": segments},
        outputs={"sequence_output": query}, name="odd_encoder",
    )
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(preset, sequence_length=T)
    with pytest.raises(ValueError, match="layer 'query' of backbone 'odd_encoder' is a Dense with an activation"):
        mtl.models.shared_bottom(keras.Input((), dtype="string"), two_tasks(),
                                 trunks.pretrained(odd, preprocessor=preprocessor, train="task_lora"))


def test_gradient_methods_say_the_tasks_share_nothing(preset):
    x, y = sentences(8)
    for mode in ("parameters", "representation"):
        model = task_lora(preset)
        # Refused when compiled (representation mode) or at the first step (parameters mode).
        with pytest.raises(ValueError, match="share no.*loss-based method"):
            model.compile(optimizer="adam", weighting=mtl.weighting.get("pcgrad", mode=mode))
            model.fit(x, y, batch_size=8, epochs=1, verbose=0)


# ------------------------------------------------------------ slow tier


@pytest.mark.slow
def test_tagging_and_export_with_raw_strings(preset, tmp_path):
    x, y = sentences(16)
    task_list = [tasks.Binary("sentiment"), tasks.Tagging("tags", num_tags=3)]
    model = task_lora(preset, task_list=task_list, pooling="mean")
    tags = np.where(np.arange(T)[None, :] < 6, np.arange(16)[:, None] % 3, -1)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(x, {"sentiment": y["sentiment"], "tags": tags}, batch_size=8, epochs=1, verbose=0)
    assert model.output["tags"].shape == (None, T, 3)
    path = mtl.export.export_saved_model(model, tmp_path / "serving")
    report = mtl.export.verify(path, {"text": x[:8]}, model)
    assert report["samples"] == 8 and report["max_abs_diff"] < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("train", ["task_lora", "lora"])
def test_mixed_precision_keeps_the_adapters_in_float32(preset, train):
    x, y = sentences(16)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build(preset, train=train)
        model.compile(optimizer=keras.optimizers.Adam(0.01))
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history["loss"]).all() and history["loss"][-1] < history["loss"][0]
    adapters = model.get_layer("sentiment_lora" if train == "task_lora" else "trunk").trainable_weights
    assert adapters and {w.dtype for w in adapters} == {"float32"}
    assert model.get_layer("trunk").compute_dtype == "bfloat16"


@pytest.mark.slow
def test_two_devices_equal_one(preset):
    from test_distributed import assert_exact_on_two_devices

    mtl.distribute.apply_keras_multi_worker_fix()
    x, y = sentences(32)
    assert_exact_on_two_devices(lambda: task_lora(preset), x, y, ["loss", "sentiment_loss", "topic_loss"])
