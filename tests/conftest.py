"""Test setup: two logical CPU devices (for MirroredStrategy tests) and small real data."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initialises its devices, i.e. before any op.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def census_small():
    """A small real slice of census-income (1,500 train-file rows, 1,500 test-file rows)."""
    from keras_mtl import data

    return data.census_income(limit=1500, batch_size=256)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
