"""Trunks: mlp, tabular (FeatureSpace), text (tokenisation in the graph), image."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import tasks, trunks


def test_mlp_concatenates_dict_inputs():
    inputs = {"x": keras.Input((3,), name="x"), "z": keras.Input((2,), name="z")}
    rep = trunks.mlp([5])(inputs)
    assert rep.shape == (None, 5)


def test_mlp_rejects_string_inputs():
    with pytest.raises(ValueError, match="input 's' has dtype string"):
        trunks.mlp([5])({"s": keras.Input((1,), dtype="string", name="s")})


def test_tabular_needs_the_feature_space_inputs(census_small):
    trunk = trunks.tabular(census_small.feature_space, [8])
    with pytest.raises(ValueError, match="feature space's own inputs"):
        trunk({"age": keras.Input((1,), name="age")})


def test_tabular_on_a_dict_feature_space_concatenates_like_concat_mode():
    # Keras' own kinds only: the dict-mode trunk's numeric block is exactly
    # the vector a concat-mode FeatureSpace gives (same sorted order).
    spec = lambda: {"x": "float_normalized", "c": "string_categorical", "b": "string_categorical"}  # noqa: E731
    columns = {"x": np.array([[1.0], [3.0], [2.0]]), "c": np.array([["a"], ["b"], ["a"]]), "b": np.array([["u"], ["v"], ["w"]])}
    concat = keras.utils.FeatureSpace(spec(), output_mode="concat")
    as_dict = keras.utils.FeatureSpace(spec(), output_mode="dict")
    concat.adapt(columns)
    as_dict.adapt(columns)
    inputs = as_dict.get_inputs()
    block = keras.Model(inputs, trunks.tabular(as_dict, [])(inputs))
    raw = {k: tf.constant(v) for k, v in columns.items()}
    np.testing.assert_allclose(block(raw), concat(columns), atol=1e-6)
    assert trunks.tabular(as_dict, [8])(inputs).shape == (None, 8)


def test_tabular_preprocessing_is_inside_the_model(census_small):
    model = mtl.models.shared_bottom(
        census_small.inputs, census_small.tasks, trunk=trunks.tabular(census_small.feature_space, [8])
    )
    raw = next(iter(census_small.test))[0]
    assert raw["education"].dtype == tf.string
    out = model.predict_on_batch(raw)
    assert out["income"].shape == (256, 1) and np.all((out["income"] >= 0) & (out["income"] <= 1))


def sentences():
    words = ["the", "cat", "dog", "sat", "ran", "on", "mat", "fast"]
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 7, size=64)
    return [" ".join(rng.choice(words, size=k)) for k in lengths]


@pytest.mark.slow
def test_text_trunk_tagging_and_classification_from_raw_strings():
    texts = sentences()
    vec = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=8)
    vec.adapt(texts)
    inp = keras.Input((), dtype="string", name="text")
    model = mtl.models.shared_bottom(
        inp,
        [tasks.Tagging("is_noun", num_tags=2), tasks.Binary("mentions_cat")],
        trunk=trunks.text(vec, units=16),
    )
    assert {k: v.shape for k, v in model.output.items()} == {
        "is_noun": (None, 8, 2),
        "mentions_cat": (None, 1),
    }
    # Token labels: 1 for nouns, 0 otherwise, -1 past the end of the sentence.
    tags = np.full((len(texts), 8), -1, "int64")
    for i, t in enumerate(texts):
        for j, w in enumerate(t.split()[:8]):
            tags[i, j] = int(w in ("cat", "dog", "mat"))
    cat = np.array([float("cat" in t.split()) for t in texts], "float32")
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    x = tf.constant(texts)
    history = model.fit(x, {"is_noun": tags, "mentions_cat": cat}, epochs=15, batch_size=16, verbose=0).history
    assert history["is_noun_loss"][-1] < history["is_noun_loss"][0] * 0.5
    assert history["is_noun_accuracy"][-1] > 0.9


def test_text_trunk_needs_an_adapted_int_vectorizer():
    with pytest.raises(ValueError, match="output_sequence_length"):
        trunks.text(keras.layers.TextVectorization(max_tokens=10))
    vec = keras.layers.TextVectorization(output_sequence_length=4)
    with pytest.raises(ValueError, match="no vocabulary"):
        trunks.text(vec)


def test_tagging_needs_a_sequence_trunk():
    with pytest.raises(ValueError, match="Task 'ner' \\(Tagging\\) needs per-token features"):
        mtl.models.shared_bottom(keras.Input((4,)), [tasks.Tagging("ner", num_tags=3)])


@pytest.mark.slow
def test_image_trunk_on_grayscale():
    inp = keras.Input((28, 28), name="image")
    model = mtl.models.shared_bottom(
        inp, [tasks.Multiclass("fine", num_classes=10), tasks.Multiclass("coarse", num_classes=4)],
        trunk=trunks.image([4, 8], units=16),
    )
    model.compile(optimizer="adam")
    x = np.random.default_rng(0).integers(0, 255, size=(8, 28, 28)).astype("float32")
    model.fit(x, {"fine": np.arange(8) % 10, "coarse": np.arange(8) % 4}, verbose=0)
    assert model.predict(x, verbose=0)["fine"].shape == (8, 10)
