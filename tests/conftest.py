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


# Doctests cannot carry a marker: these belong to the slow tier (`pytest -m
# slow`) because each exports a SavedModel and loads it in a fresh process
# (TensorFlow's import alone is over 10 s there).
SLOW_DOCTESTS = {
    "keras_mtl.export.client.Predictor",
    "keras_mtl.export.verification.run_in_fresh_process",
    "keras_mtl.export.verification.run_requests_in_fresh_process",
    "keras_mtl.export.verification.verify",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.name in SLOW_DOCTESTS:  # a doctest item is named after its object
            item.add_marker(pytest.mark.slow)


_FULL_GC_EVERY = 20
_tests_run = 0


@pytest.fixture(autouse=True)
def _seed():
    global _tests_run
    keras.utils.set_random_seed(1234)
    yield
    # clear_session() resets Keras' global state after every test. Its
    # gc.collect() walks every object TensorFlow holds, 0.5-2 s on 2 cores,
    # which was a large share of the suite's time; one full collection every
    # 20 tests frees the last tests' models all the same.
    _tests_run += 1
    keras.backend.clear_session(free_memory=_tests_run % _FULL_GC_EVERY == 0)


@pytest.fixture(scope="session")
def census_small():
    """A small real slice of census-income (1,500 train-file rows, 1,500 test-file rows)."""
    from keras_mtl import data

    return data.census_income(limit=1500, batch_size=256)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
