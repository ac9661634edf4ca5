"""Two logical CPU devices under MirroredStrategy train exactly like one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import tasks

GLOBAL_BATCH = 16


def uneven_data(rng, n=48):
    """Labels unevenly spread: within each global batch the first half (replica 0)
    has far fewer labels for task `a` than the second half (replica 1)."""
    x = rng.normal(size=(n, 5)).astype("float32")
    a = (x[:, 0] + 0.3 * x[:, 1] > 0).astype("float32")
    b = (x[:, 2] * 2 + x[:, 3]).astype("float32")
    c = np.clip((x[:, 4] + 1.5).astype("int64"), 0, 2)
    position = np.arange(n) % GLOBAL_BATCH
    a[(position < 8) & (position % 4 != 0)] = -1  # replica 0: 2 of 8 labelled
    b[position >= 12] = np.nan  # replica 1: 4 of 8 labelled
    c[position % 3 == 0] = -1
    return x, {"a": a, "b": b, "c": c}


def train(strategy, x, y, initial, optimizer):
    with strategy.scope():
        model = mtl.models.shared_bottom(
            keras.Input((5,)),
            [tasks.Binary("a", weight=1.5), tasks.Regression("b", weight=0.5), tasks.Multiclass("c", num_classes=3)],
            trunk=mtl.trunks.mlp([16, 8]),
        )
        model.set_weights(initial)
        model.compile(optimizer=optimizer())
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    history = model.fit(ds, epochs=2, verbose=0).history
    return model.get_weights(), history


@pytest.mark.parametrize(
    "optimizer",
    [lambda: keras.optimizers.SGD(0.1), lambda: keras.optimizers.Adam(0.01)],
    ids=["sgd", "adam"],
)
def test_mirrored_two_devices_equal_one_device(rng, optimizer):
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "conftest sets up two logical CPU devices"
    x, y = uneven_data(rng)
    # The test has teeth only if replicas see different label counts.
    first, second = y["a"][:8], y["a"][8:16]
    assert (first >= 0).sum() != (second >= 0).sum()

    reference = mtl.models.shared_bottom(
        keras.Input((5,)),
        [tasks.Binary("a"), tasks.Regression("b"), tasks.Multiclass("c", num_classes=3)],
        trunk=mtl.trunks.mlp([16, 8]),
    )
    initial = reference.get_weights()

    one, h1 = train(tf.distribute.OneDeviceStrategy("/cpu:0"), x, y, initial, optimizer)
    two, h2 = train(
        tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), x, y, initial, optimizer
    )
    moved = max(np.abs(w - w0).max() for w, w0 in zip(one, initial))
    assert moved > 1e-3, "training must actually change the weights"
    for w1, w2 in zip(one, two):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    for key in ("a_loss", "b_loss", "c_loss", "loss"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5, err_msg=key)
