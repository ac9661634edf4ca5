"""TensorFlow Datasets as mixture sources, and a local TFDS cache for prepared sources.

`from_tfds` reads a dataset that is on disk (prepared with `tfds build`,
`download=True`, or `store_as_tfds`) and never downloads unless asked: a
dataset that is not prepared raises at once instead of hanging on the
network. `store_as_tfds` writes any `(features, labels)` source as a local
TFDS dataset (`tfds.dataset_builders.store_as_tfds_dataset`), which
`from_tfds(path, split)` or `tfds.builder_from_directory(path)` reads back:
prepare a slow pipeline once (tokenising, joining, relabelling) and train
from the TFRecords after that.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any, Mapping, Sequence

import tensorflow as tf

from keras_mtl.data import sources as sources_lib


def tfds_builder(name_or_builder: Any, data_dir: str | os.PathLike | None = None):
    """A `tfds` builder from a registered name, a prepared dataset folder, or a builder.

    A folder holding `dataset_info.json` (e.g. what `store_as_tfds` returns)
    is read with `tfds.builder_from_directory`; anything else goes to
    `tfds.builder(name, data_dir=data_dir)`.

    Example:
    >>> tfds_builder("imdb_reviews").name
    'imdb_reviews'
    """
    import tensorflow_datasets as tfds

    if isinstance(name_or_builder, tfds.core.DatasetBuilder):
        return name_or_builder
    path = os.fspath(name_or_builder)
    if os.path.isfile(os.path.join(path, "dataset_info.json")):
        return tfds.builder_from_directory(path)
    return tfds.builder(path, data_dir=data_dir)


def from_tfds(
    name_or_builder: Any,
    split: str,
    *,
    features: Mapping[str, str] | Sequence[str] | None = None,
    labels: Mapping[str, str] | Sequence[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    shuffle_files: bool = False,
    shuffle_buffer: int | None = None,
    seed: int | None = None,
    read_config: Any = None,
) -> tf.data.Dataset:
    """An unbatched `(features, labels)` source from a TFDS dataset on disk.

    Args:
        name_or_builder: a registered TFDS name (`"imdb_reviews"`,
            `"ag_news_subset"`), a prepared dataset folder, or a builder.
        split: TFDS split, e.g. `"train"` or `"train[:10%]"`.
        features: `{feature name: TFDS key}`, or TFDS keys kept as named.
        labels: `{task label key: TFDS key}`, or TFDS keys kept as named.
            With neither `features` nor `labels`, the dataset must have been
            written by `store_as_tfds` (keys `features` and `labels`).
        data_dir: where TFDS datasets live (TFDS's default when None).
        download: prepare the dataset first if it is not on disk (needs the
            network). Off by default, so that a missing dataset raises.
        shuffle_files: read the TFRecord shards in random order.
        shuffle_buffer: shuffle examples with this buffer, anew on each pass.
        seed: seed of the example shuffle.
        read_config: a `tfds.ReadConfig`.

    Example:
    >>> import tensorflow_datasets as tfds
    >>> with tfds.testing.mock_data(num_examples=3):  # fake examples, no disk or network
    ...     ds = from_tfds("imdb_reviews", "train", features={"text": "text"},
    ...                    labels={"sentiment": "label"}, download=True)
    ...     x, y = next(iter(ds))
    >>> sorted(x), sorted(y)
    (['text'], ['sentiment'])
    """
    builder = tfds_builder(name_or_builder, data_dir)
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(
                f"TFDS dataset {builder.name!r} is not prepared in {builder.data_dir}. Prepare it "
                f"once with `tfds build {builder.name}` or from_tfds(..., download=True) (both "
                "need the network), point data_dir= at a folder that has it, or cache your own "
                "data with keras_mtl.data.store_as_tfds()."
            )
        builder.download_and_prepare()
    keys = list(builder.info.features.keys())
    if features is None and labels is None:
        if sorted(keys) != ["features", "labels"]:
            raise ValueError(
                f"from_tfds({builder.name!r}): say which TFDS keys are features and which are "
                f"labels, e.g. features={{'text': 'text'}}, labels={{'sentiment': 'label'}}; the "
                f"dataset has keys {keys}."
            )
        to_pair = lambda ex: (ex["features"], ex["labels"])  # noqa: E731
    else:
        if features is None or labels is None:
            raise ValueError(
                "from_tfds: give both features= and labels= (or neither, for store_as_tfds data)."
            )
        feature_keys, label_keys = _mapping(features), _mapping(labels)
        if not label_keys:
            raise ValueError("from_tfds: labels= names no TFDS key; a source must label at least one task.")
        unknown = sorted(k for k in [*feature_keys.values(), *label_keys.values()] if k not in keys)
        if unknown:
            raise KeyError(f"TFDS dataset {builder.name!r} has no key(s) {unknown}; it has {keys}.")

        def to_pair(ex):
            return (
                {name: ex[key] for name, key in feature_keys.items()},
                {name: ex[key] for name, key in label_keys.items()},
            )

    ds = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config)
    ds = ds.map(to_pair)
    if shuffle_buffer:
        ds = ds.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    return ds


def store_as_tfds(
    splits: Mapping[str, tf.data.Dataset],
    name: str,
    data_dir: str | os.PathLike,
    *,
    version: str = "1.0.0",
    description: str | None = None,
) -> str:
    """Writes `(features, labels)` sources as a local TFDS dataset; returns its folder.

    Each split is an unbatched source (e.g. from `from_pandas`); all splits
    need the same element structure. Examples are stored in order as
    `{"features": {...}, "labels": {...}}` TFRecords, missing-label markers
    included, and read back as the same pairs with `from_tfds(folder, split)`
    (or `from_tfds(name, split, data_dir=data_dir)`). Writing a version that
    exists is an error: choose a new `version` or remove the folder.

    Example:
    >>> import tempfile
    >>> src = tf.data.Dataset.from_tensor_slices(({"text": ["a", "b"]}, {"stars": [4.0, float("nan")]}))
    >>> folder = store_as_tfds({"train": src}, "my_reviews", tempfile.mkdtemp())
    >>> [float(y["stars"]) for _, y in from_tfds(folder, "train")]
    [4.0, nan]
    """
    import tensorflow_datasets as tfds

    if not isinstance(splits, Mapping) or not splits:
        raise ValueError("store_as_tfds needs a non-empty dict {split_name: dataset}.")
    specs = {}
    for split, ds in splits.items():
        parts = sources_lib.parts(f"{name}/{split}", ds)
        if parts.weights is not None:
            raise ValueError(
                f"store_as_tfds: split {split!r} has sample weights; store (features, labels) pairs."
            )
        specs[split] = (parts.features, parts.labels)
    first_split, first = next(iter(specs.items()))
    for split, spec in specs.items():
        if spec != first:
            raise ValueError(
                f"store_as_tfds: split {split!r} has elements {spec}, split {first_split!r} has {first}; "
                "all splits need the same structure."
            )
    tensor = lambda s: tfds.features.Tensor(shape=tuple(s.shape.as_list()), dtype=s.dtype)  # noqa: E731
    feature_dict = tfds.features.FeaturesDict(
        {part: {k: tensor(s) for k, s in spec.items()} for part, spec in zip(("features", "labels"), first)}
    )
    try:
        # TFDS prints "Downloading and preparing ..." to stdout, which would
        # mislead here: nothing is downloaded.
        with contextlib.redirect_stdout(io.StringIO()):
            builder = tfds.dataset_builders.store_as_tfds_dataset(
                name=name,
                version=version,
                features=feature_dict,
                split_datasets={
                    s: ds.map(lambda x, y: {"features": x, "labels": y}) for s, ds in splits.items()
                },
                data_dir=os.fspath(data_dir),
                description=description,
                disable_shuffling=True,  # keep the order the examples were written in
            )
    except ModuleNotFoundError as e:
        if e.name != "importlib_resources":
            raise
        # tensorflow-datasets 4.9 imports it on every Python but declares it only for < 3.9.
        raise ModuleNotFoundError(
            "store_as_tfds needs the package 'importlib_resources' (a dependency of keras-mtl): "
            "pip install importlib-resources"
        ) from e
    return os.fspath(builder.data_dir)


def _mapping(keys: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(keys, str):
        keys = [keys]
    return dict(keys) if isinstance(keys, Mapping) else {k: k for k in keys}
