"""SparseEmbedding: Keras' Embedding with a lookup that reads only the batch's rows."""

import keras
import numpy as np
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.layers import SparseEmbedding


def pair(mask_zero=False):
    weights = np.arange(12, dtype="float32").reshape(6, 2)
    layers = []
    for cls in (keras.layers.Embedding, SparseEmbedding):
        layer = cls(6, 2, mask_zero=mask_zero)
        layer.build((None,))
        layer.set_weights([weights])
        layers.append(layer)
    return layers


def test_outputs_gradients_and_mask_equal_keras_embedding():
    ids = tf.constant([[5, 0, 5], [2, 3, 0]])
    upstream = np.random.default_rng(0).normal(size=(2, 3, 2)).astype("float32")
    results = []
    for layer in pair(mask_zero=True):
        with tf.GradientTape() as tape:
            out = layer(ids)
            loss = tf.reduce_sum(out * upstream)
        (grad,) = tape.gradient(loss, layer.trainable_variables)
        assert isinstance(grad, tf.IndexedSlices)
        results.append((out.numpy(), tf.convert_to_tensor(grad).numpy(), layer.compute_mask(ids).numpy()))
    (o1, g1, m1), (o2, g2, m2) = results
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(o2[0, 0], [10.0, 11.0])  # row 5 of 0..11 in pairs


def _read_ops(layer):
    fn = tf.function(lambda ids: layer(ids)).get_concrete_function(tf.TensorSpec([None], tf.int64))
    return {op.type for op in fn.graph.get_operations()}


def test_the_lookup_is_a_sparse_read_of_the_variable():
    keras_layer, sparse = pair()
    # Keras reads the whole table (ReadVariableOp, a full copy once the
    # variable has had sparse updates), then gathers from the tensor.
    assert {"ReadVariableOp", "GatherV2"} <= _read_ops(keras_layer)
    ops = _read_ops(sparse)
    assert "ResourceGather" in ops and "ReadVariableOp" not in ops


def test_float_ids_are_cast_and_mixed_precision_output_dtype():
    layer = SparseEmbedding(4, 3, dtype="mixed_float16")
    out = layer(np.array([1.0, 3.0]))
    assert out.dtype == "float16" and out.shape == (2, 3)


def test_keras_file_round_trip_with_safe_mode(tmp_path):
    inputs = keras.Input((1,), dtype="int64")
    model = keras.Model(inputs, SparseEmbedding(10, 4, name="ids_embedding")(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("ids_embedding")) is SparseEmbedding
    ids = np.array([[7], [2]])
    np.testing.assert_array_equal(loaded(ids), model(ids))


def test_tabular_trunk_embeds_hashed_ids_with_it():
    fs = mtl.preprocessing.FeatureSpace(
        {"user": mtl.preprocessing.FeatureSpace.hashed(num_bins=64, embedding_dim=4)}, output_mode="dict"
    )
    fs.adapt(tf.data.Dataset.from_tensor_slices({"user": ["a", "b", "c"]}).batch(3))
    model = mtl.models.shared_bottom(fs.get_inputs(), [mtl.tasks.Binary("y")], trunk=mtl.trunks.tabular(fs, [4]))
    assert type(model.get_layer("user_embedding")) is SparseEmbedding
