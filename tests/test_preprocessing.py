"""One-pass FeatureSpace.adapt gives Keras' FeatureSpace's encoding."""

import keras
import numpy as np
import pytest

from keras_mtl import preprocessing
from keras_mtl.data import census, from_columns


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
