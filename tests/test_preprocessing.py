"""One-pass FeatureSpace.adapt gives Keras' FeatureSpace's encoding."""

import keras
import numpy as np
import pytest

from keras_mtl import preprocessing
from keras_mtl.data import census, from_columns


@pytest.mark.slow
def test_same_encoding_as_keras_feature_space():
    features, _ = census.read_split("train", limit=3000)
    FS = keras.utils.FeatureSpace
    reference = FS(
        {c: FS.float_normalized() if c in census.NUMERIC else FS.string_categorical(num_oov_indices=1)
         for c in census.FEATURES},
        output_mode="concat",
    )
    reference.adapt(from_columns(features, batch_size=1024))
    fast = census.feature_space()
    fast.adapt(features)
    test, _ = census.read_split("test", limit=500)  # includes categories unseen in training
    for name in census.CATEGORICAL:
        assert fast.preprocessors[name].get_vocabulary() == reference.preprocessors[name].get_vocabulary(), name
    np.testing.assert_allclose(fast(test).numpy(), reference(test).numpy(), atol=1e-4)


@pytest.mark.slow
def test_adapt_from_a_dataset_reads_it_once(census_small):
    features, labels = census.read_split("train", limit=500)
    fs = census.feature_space()
    fs.adapt(from_columns(features, labels, batch_size=128))  # (features, labels) batches are fine
    again = census.feature_space()
    again.adapt(features)
    np.testing.assert_allclose(fs(features).numpy(), again(features).numpy(), atol=1e-6)


def test_adapt_errors():
    fs = preprocessing.FeatureSpace({"x": "float_normalized", "c": "string_categorical"})
    with pytest.raises(ValueError, match=r"no data for feature\(s\) \['c'\]"):
        fs.adapt({"x": np.ones((3, 1))})
    with pytest.raises(ValueError, match="takes a dict of arrays or a tf.data.Dataset"):
        fs.adapt([1, 2, 3])


def test_adapt_tokenises_string_columns_of_any_shape_and_encoding():
    # TextVectorization adapts on (n, 1) columns like the lookups, on (n,)
    # columns, and on the UTF-8 bytes a tf.data pipeline yields.
    FS = preprocessing.FeatureSpace
    texts = np.array(["Café au lait", "café noir", "thé", ""], dtype=object)
    vocabularies = []
    for data in ({"t": texts[:, None]}, {"t": texts}, from_columns({"t": texts[:, None]}, batch_size=3)):
        fs = FS({"t": FS.text(max_tokens=20, sequence_length=3)}, output_mode="dict")
        fs.adapt(data)
        vocabularies.append(fs.preprocessors["t"].get_vocabulary())
    assert vocabularies[0] == vocabularies[1] == vocabularies[2]
    assert vocabularies[0][:3] == ["", "[UNK]", "café"]


def test_default_embedding_dim_is_the_dcn_rule_capped_at_64():
    assert [preprocessing.default_embedding_dim(n) for n in (1, 2, 10, 100, 10**4, 10**5, 2**20)] == [6, 7, 11, 19, 60, 64, 64]
    with pytest.raises(ValueError, match=r"cardinality must be an integer >= 1, got 0"):
        preprocessing.default_embedding_dim(0)


def test_embedded_feature_space_saves_and_loads(tmp_path):
    FS = preprocessing.FeatureSpace
    fs = FS(
        {
            "x": "float_normalized",
            "item": FS.embedded_categorical(dtype="int64", max_tokens=10, embedding_dim=3),
            "user": FS.hashed(2**20),
            "genres": FS.token_list(max_tokens=50, sequence_length=5, pooling="sum"),
        },
        output_mode="dict",
    )
    data = {
        "x": np.array([[1.0], [2.0]]),
        "item": np.array([[7], [9]]),
        "user": np.array([["u1"], ["u2"]], dtype=object),
        "genres": np.array([["drama sci-fi"], [""]], dtype=object),
    }
    fs.adapt(data)
    fs.save(str(tmp_path / "fs.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "fs.keras"))
    for name in ("item", "user", "genres"):
        a, b = fs.features[name], loaded.features[name]
        assert isinstance(b, preprocessing.EmbeddedFeature)
        assert (b.kind, b.embedding_dim, b.pooling, b.cardinality, b.output_dim) == (
            a.kind, a.embedding_dim, a.pooling, a.cardinality, a.output_dim
        ), name
    out, again = fs(data), loaded(data)
    for name in out:
        np.testing.assert_allclose(out[name], again[name], atol=1e-6)
