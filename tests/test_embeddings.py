"""Embedded features in the tabular trunk: ids, hashed ids, text and token lists through `keras.layers.Embedding`."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_distributed import strategies

import keras_mtl as mtl
from keras_mtl import _encoding as encoding, saving
from keras_mtl.preprocessing import FeatureSpace as FS

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "fast"]
GENRES = ["drama", "comedy", "sci-fi", "horror", "romance"]


def table(n=256, seed=0):
    """A small generated table: one column per kind, and a label that each column alone predicts."""
    rng = np.random.default_rng(seed)
    items = np.array([f"item{i}" for i in range(20)], dtype=object)
    users = rng.choice(10**7, size=20, replace=False).astype("int64")  # raw ids far beyond any one-hot
    item, user = rng.integers(0, 20, n), rng.integers(0, 20, n)
    titles = [" ".join(rng.choice(WORDS, size=rng.integers(1, 6))) for _ in range(n)]
    # Up to 3 genres, and some rows with none: an empty list.
    genres = [" ".join(rng.choice(GENRES, size=rng.integers(0, 4), replace=False)) for _ in range(n)]
    features = {
        "x": rng.normal(size=(n, 1)).astype("float32"),
        "item": items[item][:, None],
        "item_code": (1000 + item).astype("int64")[:, None],
        "user": users[user][:, None],
        "title": np.array(titles, dtype=object)[:, None],
        "genres": np.array(genres, dtype=object)[:, None],
    }
    labels = {
        "item": (item % 2).astype("float32"),
        "item_code": (item % 2).astype("float32"),
        "user": (user % 2).astype("float32"),
        "title": np.array(["cat" in t.split() for t in titles], "float32"),
        "genres": np.array(["drama" in g.split() for g in genres], "float32"),
    }
    return features, labels


KINDS = {
    "embedded_categorical-string": ("item", lambda: FS.embedded_categorical()),
    "embedded_categorical-int64": ("item_code", lambda: FS.embedded_categorical(dtype="int64")),
    "hashed-string": ("item", lambda: FS.hashed(1024)),
    "hashed-int64": ("user", lambda: FS.hashed(1024, dtype="int64")),
    "text": ("title", lambda: FS.text(max_tokens=50, sequence_length=8)),
    "token_list-mean": ("genres", lambda: FS.token_list(max_tokens=20, sequence_length=4)),
    "token_list-sum": ("genres", lambda: FS.token_list(max_tokens=20, sequence_length=4, pooling="sum")),
}


def columns(features, names):
    return {k: features[k] for k in names}


def model_on(fs, units=(16,), task="y"):
    return mtl.models.shared_bottom(
        fs.get_inputs(), [mtl.tasks.Binary(task)], trunk=mtl.trunks.tabular(fs, list(units))
    )


def all_kinds_space(features, num_bins=1000):
    fs = FS(
        {
            "x": "float_normalized",
            "c": "string_categorical",
            "item": FS.embedded_categorical(embedding_dim=4, name="item"),
            "user": FS.hashed(num_bins, dtype="int64", embedding_dim=8, name="user"),
            "title": FS.text(max_tokens=50, sequence_length=8, name="title"),
            "genres": FS.token_list(max_tokens=20, sequence_length=4, pooling="sum", name="genres"),
        },
        output_mode="dict",
    )
    features = {**features, "c": features["item"]}  # a one-hot categorical next to the embedded ones
    fs.adapt(columns(features, fs.features))
    return fs, columns(features, fs.features)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_trains_in_a_shared_bottom_model(kind):
    column, spec = KINDS[kind]
    features, labels = table()
    fs = FS({"x": "float_normalized", column: spec()}, output_mode="dict")
    cols = columns(features, fs.features)
    fs.adapt(cols)
    model = model_on(fs)
    feature = fs.features[column]
    assert model.get_layer(f"{column}_embedding").embeddings.shape == (feature.cardinality, feature.output_dim)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    train = mtl.data.from_columns(cols, {"y": labels[column]}, batch_size=32, shuffle=True)
    history = model.fit(train, epochs=10, verbose=0).history
    # x is noise: only the embedded column can explain the label.
    assert history["y_accuracy"][-1] >= 0.9, history["y_accuracy"]
    assert history["y_loss"][-1] < 0.5 * history["y_loss"][0]


@pytest.mark.slow
def test_hashed_million_ids_use_an_embedding_table_never_a_one_hot():
    features, labels = table(n=2048)
    fs = FS({"x": "float_normalized", "user": FS.hashed(2**20, dtype="int64", embedding_dim=16)}, output_mode="dict")
    cols = columns(features, fs.features)
    fs.adapt(cols)
    model = model_on(fs)
    assert model.get_layer("user_embedding").embeddings.shape == (2**20, 16)
    assert not any(isinstance(layer, keras.layers.CategoryEncoding) for layer in model.layers)
    widths = {layer.name: layer.output.shape[-1] for layer in model.layers}
    assert max(widths.values()) < 2**10, widths  # (batch, 16) embeddings, not (batch, 2**20)
    model.compile(optimizer="adam")
    history = model.fit(mtl.data.from_columns(cols, {"y": labels["user"]}, batch_size=1024), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.slow
def test_unseen_values_at_predict_time_map_to_oov_or_a_hash_bin():
    features, labels = table()
    fs, cols = all_kinds_space(features)
    model = model_on(fs)
    model.compile(optimizer="adam")
    model.fit(mtl.data.from_columns(cols, {"y": labels["item"]}, batch_size=64), verbose=0)
    unseen = {
        "x": tf.constant([[0.5], [0.5], [0.5]]),
        "c": tf.constant([["item0"], ["item0"], ["item0"]]),
        "item": tf.constant([["never-seen"], ["also-new"], ["item3"]]),
        "user": tf.constant([[10**12], [10**12], [-5]], dtype=tf.int64),
        "title": tf.constant([["zebra giraffe"], ["Zebra!"], ["the cat"]]),
        "genres": tf.constant([["western"], ["noir"], ["drama western"]]),
    }
    ids = fs(unseen)
    assert ids["item"].numpy().ravel().tolist()[:2] == [0, 0]  # the OOV slot
    assert 0 <= ids["user"].numpy().min() and ids["user"].numpy().max() < 1000
    assert ids["title"].numpy()[0, :2].tolist() == [1, 1]  # [UNK], then padding
    assert ids["genres"].numpy()[2, :3].tolist() == [fs.preprocessors["genres"].get_vocabulary().index("drama"), 1, 0]
    out = model.predict_on_batch(unseen)["y"]
    assert np.isfinite(out).all()
    # Rows 0 and 1 differ only in unseen values: both items take the OOV
    # embedding, the texts (mean pooled) are all [UNK], the lists (sum
    # pooled) are one [UNK] each.
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


@pytest.mark.parametrize("pooling, expected", [("mean", [[2.0, 3.0], [1.0, 2.0], [0.0, 0.0]]),
                                               ("sum", [[4.0, 6.0], [1.0, 2.0], [0.0, 0.0]])])
def test_pooling_leaves_padding_out(pooling, expected):
    fs = FS({"tags": FS.token_list(sequence_length=4, embedding_dim=2, pooling=pooling)}, output_mode="dict")
    fs.adapt({"tags": np.array([["a b"], ["a"], ["b a"]], dtype=object)})
    inputs = fs.get_inputs()
    model = keras.Model(inputs, mtl.trunks.tabular(fs, [])(inputs))
    vocab = fs.preprocessors["tags"].get_vocabulary()
    table = np.full((len(vocab), 2), 1e6, "float32")  # padding (and [UNK]) rows huge
    table[vocab.index("a")] = [1.0, 2.0]
    table[vocab.index("b")] = [3.0, 4.0]
    model.get_layer("tags_embedding").embeddings.assign(table)
    out = model({"tags": tf.constant([["a b"], ["a"], [""]])})
    np.testing.assert_allclose(out, expected)


@pytest.mark.slow
def test_keras_file_round_trip_gives_identical_predictions(tmp_path):
    features, labels = table()
    fs, cols = all_kinds_space(features)
    model = model_on(fs)
    model.compile(optimizer="adam")
    data = mtl.data.from_columns(cols, {"y": labels["title"]}, batch_size=64)
    model.fit(data, verbose=0)
    path = saving.save_model(model, tmp_path / "model.keras")
    loaded = saving.load_model(path)
    assert isinstance(loaded.get_layer("genres_sum_pool"), mtl.trunks.MaskedPooling1D)
    assert loaded.get_layer("user_embedding").embeddings.shape == (1000, 8)
    np.testing.assert_array_equal(loaded.predict(data, verbose=0)["y"], model.predict(data, verbose=0)["y"])


@pytest.mark.slow
def test_saved_model_export_serves_one_value_per_feature(tmp_path):
    features, labels = table()
    fs, cols = all_kinds_space(features)
    model = model_on(fs)
    model.compile(optimizer="adam")
    model.fit(mtl.data.from_columns(cols, {"y": labels["genres"]}, batch_size=64), verbose=0)
    path = mtl.export.export_saved_model(model, tmp_path)
    samples = {k: v[:6, 0].copy() for k, v in cols.items()}  # one value per example, strings as object arrays
    samples["item"][0] = "never-seen"
    samples["genres"][1] = ""
    report = mtl.export.verify(path, samples, model)
    assert report["max_abs_diff"] <= 1e-5


@pytest.mark.slow
def test_encoded_path_cuts_between_lookups_and_embeddings():
    features, labels = table()
    fs, cols = all_kinds_space(features)
    model = model_on(fs)
    split = model.preprocessing
    assert split is not None
    # One id tensor per embedded feature (lookup, hashing, tokenisation) and
    # one block of numeric and one-hot columns; no embedding in the front.
    assert set(split.names) == {"item_preprocessor", "user_preprocessor", "title_preprocessor",
                                "genres_preprocessor", "trunk_numeric"}
    assert not any(isinstance(layer, keras.layers.Embedding) for layer in split.encoder.layers)
    encoded = encoding.encode_columns(split.encoder, cols)
    assert encoded["title_preprocessor"].dtype == np.int64 and encoded["title_preprocessor"].shape == (256, 8)
    raw = {k: tf.constant(v) for k, v in cols.items()}
    np.testing.assert_allclose(model(raw)["y"], model(encoded)["y"], atol=1e-6)
    # The encoded step is numeric: `jit_compile="auto"` compiles it with XLA.
    model.compile(optimizer="adam")
    history = model.fit(mtl.data.from_columns(encoded, {"y": labels["item"]}, batch_size=64), verbose=0)
    assert model.jit_compile is True and np.isfinite(history.history["loss"]).all()


@pytest.mark.slow
def test_mirrored_two_devices_equal_one_device_with_embedded_and_hashed_ids():
    features, labels = table(n=64)
    fs = FS(
        {"x": "float_normalized", "item": FS.embedded_categorical(), "user": FS.hashed(1000, dtype="int64")},
        output_mode="dict",
    )
    cols = columns(features, fs.features)
    fs.adapt(cols)
    reference = model_on(fs)
    initial = reference.get_weights()
    # Encoded ids, as `MultiTaskData.encoded` gives them: Keras' fit under a
    # MirroredStrategy averages a first batch across replicas to build the
    # model, which fails on raw string columns (tensorflow/tensorflow#80951).
    encoded = encoding.encode_columns(reference.preprocessing.encoder, cols)
    runs = []
    for strategy in strategies():
        with strategy.scope():
            model = model_on(fs)
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.Adam(0.01))
        data = mtl.data.from_columns(encoded, {"y": labels["item"]}, batch_size=16)
        history = model.fit(data, epochs=2, verbose=0).history
        runs.append((model.get_weights(), history))
    (one, h1), (two, h2) = runs
    assert max(np.abs(w - w0).max() for w, w0 in zip(one, initial)) > 1e-3
    for w1, w2 in zip(one, two):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FS.embedded_categorical(embedding_dim=0),
         r"FeatureSpace.embedded_categorical: embedding_dim must be an integer >= 1 or None, got 0\."),
        (lambda: FS.hashed(2**20, embedding_dim=-3, name="user"),
         r"FeatureSpace.hashed \(feature 'user'\): embedding_dim must be an integer >= 1 or None, got -3\."),
        (lambda: FS.text(embedding_dim=2.5), r"embedding_dim must be an integer >= 1 or None, got 2.5"),
        (lambda: FS.hashed(1), r"FeatureSpace.hashed: num_bins must be an integer >= 2, got 1\."),
        (lambda: FS.hashed(None), r"num_bins must be an integer >= 2, got None"),
        (lambda: FS.embedded_categorical(dtype="float32"), r"dtype must be 'string' or 'int64', got 'float32'"),
        (lambda: FS.hashed(8, dtype="int32"), r"dtype must be 'string' or 'int64', got 'int32'"),
        (lambda: FS.token_list(pooling="max", name="genres"),
         r"FeatureSpace.token_list \(feature 'genres'\): pooling must be 'mean' or 'sum', got 'max'\."),
        (lambda: FS.text(sequence_length=0), r"sequence_length must be an integer >= 1, got 0"),
        (lambda: FS.token_list(max_tokens=2), r"max_tokens must be an integer >= 3, got 2"),
        (lambda: FS.embedded_categorical(max_tokens=1), r"max_tokens must be an integer >= 2 or None, got 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["token_list", "text", "hashed", "embedded_categorical"])
def test_embedded_kinds_need_a_dict_feature_space(kind):
    spec = {"token_list": FS.token_list, "text": FS.text, "hashed": lambda: FS.hashed(16),
            "embedded_categorical": FS.embedded_categorical}[kind]()
    with pytest.raises(ValueError, match=rf"feature 'f' is {kind}, .*use output_mode='dict'") as error:
        FS({"x": "float_normalized", "f": spec}, output_mode="concat")
    assert "\n" not in str(error.value)


def test_tabular_names_an_integer_feature_it_cannot_embed():
    fs = FS({"c": FS.string_categorical(output_mode="int")}, output_mode="dict")
    fs.adapt({"c": np.array([["a"], ["b"]], dtype=object)})
    with pytest.raises(ValueError, match=r"feature 'c' gives int64 values .*embedded_categorical"):
        mtl.trunks.tabular(fs)(fs.get_inputs())
