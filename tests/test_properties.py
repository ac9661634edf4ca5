"""Property-based tests (hypothesis): masking, mixtures, sampling and config parsing hold for any input."""

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_mtl import config, _masking as masking, tasks
from keras_mtl.config import ConfigError
from keras_mtl.data import mixture, sampling
from keras_mtl.data.checks import check_labels

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)


# ---------------------------------------------------------------- masking
@FAST
@given(hnp.arrays(np.float32, st.integers(1, 40), elements=floats), st.data())
def test_masked_mean_is_the_mean_of_the_labelled_units(values, data):
    mask = data.draw(hnp.arrays(np.bool_, values.shape))
    mean, count = masking.masked_mean(tf.constant(values), tf.constant(mask, tf.float32))
    assert float(count) == mask.sum()
    expected = values[mask].astype(np.float64).mean() if mask.any() else 0.0  # an unlabelled batch gives 0, not NaN
    assert math.isfinite(float(mean))
    assert float(mean) == pytest.approx(expected, rel=1e-4, abs=1e-3)


@FAST
@given(hnp.arrays(np.float32, st.integers(1, 30), elements=st.sampled_from([0.0, 1.0, -1.0, np.nan])))
def test_binary_prepare_weighs_exactly_the_present_labels(labels):
    y_pred = tf.fill([len(labels), 1], 0.5)
    y, w = tasks.Binary("a").prepare(labels, y_pred)
    present = ~np.isnan(labels) & (labels != -1)
    np.testing.assert_array_equal(w.numpy().ravel(), present.astype(np.float32))
    assert np.isfinite(y.numpy()).all()  # missing labels never reach the loss as NaN
    np.testing.assert_array_equal(y.numpy().ravel()[present], labels[present])


@FAST
@given(st.integers(2, 6), st.data())
def test_class_id_check_accepts_exactly_the_valid_ids(num_classes, data):
    ids = data.draw(hnp.arrays(np.int64, st.integers(1, 20), elements=st.integers(-3, num_classes + 2)))
    task = tasks.Multiclass("k", num_classes)
    valid = ((ids >= 0) & (ids < num_classes)) | (ids == -1)
    if valid.all():
        check_labels(task, ids, require_some=False)
    else:
        row = int(np.argmax(~valid))
        with pytest.raises(ValueError, match=rf"class id {ids[row]} at row {row} is out of range"):
            check_labels(task, ids, require_some=False)


# ---------------------------------------------------------------- mixtures
@FAST
@given(st.dictionaries(st.sampled_from("abcd"), st.integers(1, 10_000), min_size=1),
       st.sampled_from(["proportional", "uniform", "temperature"]))
def test_sampling_probabilities_are_a_distribution(sizes, method):
    p = sampling.get(method).probabilities(sizes)
    assert set(p) == set(sizes)
    assert all(v > 0 for v in p.values()) and sum(p.values()) == pytest.approx(1.0)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**16))
def test_every_mixed_example_has_exactly_its_sources_labels(n_a, n_b, batch_size, seed):
    a = tf.data.Dataset.from_tensor_slices(({"x": np.full((n_a, 1), 1.0, "float32")}, {"s": np.ones(n_a, "int64")}))
    b = tf.data.Dataset.from_tensor_slices(({"x": np.full((n_b, 1), 2.0, "float32")}, {"t": np.full(n_b, 2.5, "float32")}))
    ts = [tasks.Binary("s"), tasks.Regression("t")]
    for x, y in mixture({"a": a, "b": b}, ts, batch_size=batch_size, seed=seed):
        from_a = x["x"].numpy().ravel() == 1.0
        np.testing.assert_array_equal(y["s"].numpy() == 1, from_a)     # labelled exactly on a's rows
        np.testing.assert_array_equal(y["s"].numpy() == -1, ~from_a)   # missing marker elsewhere
        np.testing.assert_array_equal(np.isnan(y["t"].numpy()), from_a)
        assert len(from_a) == batch_size


# ------------------------------------------------------------------ config
KEYS = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@FAST
@given(st.sampled_from(["train", "data", "output", "monitor"]), KEYS)
def test_unknown_config_keys_are_always_named(section, key):
    known = {f.name for f in config.dataclasses.fields(getattr(config, f"{section.capitalize()}Config"))}
    data = {"name": "x", section: {key: 1}}
    if key in known:
        return
    with pytest.raises(ConfigError, match=rf"Unknown config key '{section}\.{key}'"):
        config.from_dict(config.Config, data)


@FAST
@given(st.one_of(st.text(max_size=5), st.floats(allow_nan=False), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)))
def test_wrong_types_for_an_int_key_are_named(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        config.from_dict(config.Config, {"name": "x", "train": {"epochs": value}})


@FAST
@given(st.integers(1, 10**6), st.integers(1, 4096), st.floats(1e-6, 1.0))
def test_valid_values_round_trip(epochs, batch_size, lr):
    cfg = config.from_dict(config.Config, {"name": "x", "train": {"epochs": epochs, "learning_rate": lr},
                                           "data": {"batch_size": batch_size}})
    again = config.from_dict(config.Config, config.to_dict(cfg))
    assert again == cfg and again.train.epochs == epochs


@FAST
@given(st.text(min_size=1, max_size=20))
def test_output_folders_never_leave_the_project(folder):
    from pathlib import PurePath

    escapes = PurePath(folder).is_absolute() or ".." in PurePath(folder).parts or folder.startswith("~") or not folder.strip()
    try:
        config.from_dict(config.Config, {"name": "x", "output": {"logs_dir": folder}})
    except ConfigError as e:
        assert "output.logs_dir" in str(e) and escapes
    else:
        assert not escapes
