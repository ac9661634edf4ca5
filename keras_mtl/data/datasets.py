"""The datasets a run config's `data.dataset` (and `data.sources.<name>.dataset`) can name.

A dataset is a loader: `loader(batch_size=, validation_fraction=, limit=,
seed=)` returning a `keras_mtl.data.MultiTaskData`. The bundled ones are
registered here; `register(name, loader)` adds your own, after which a run
config (and `keras-mtl train` in the same process) accepts it by name.
"""

from __future__ import annotations

import typing

from keras_mtl._registry import Registry
from keras_mtl.data.census import census_income
from keras_mtl.data.fashion import fashion_mnist
from keras_mtl.data.news20 import newsgroups
from keras_mtl.data.tweets import trump_tweets

_DATASETS = Registry("dataset")


def register(name: str, loader: typing.Callable | None = None):
    """Makes a dataset loader available as `name`; use it as a decorator or call it with the loader.

    The loader takes `batch_size`, `validation_fraction`, `limit` and `seed`
    as keyword arguments and returns a `MultiTaskData`.

    Example:
    >>> @register("census_head")
    ... def census_head(batch_size=256, validation_fraction=0.1, limit=None, seed=0):
    ...     return census_income(batch_size=batch_size, validation_fraction=validation_fraction,
    ...                          limit=min(limit or 500, 500), seed=seed)
    >>> "census_head" in available()
    True
    """
    return _DATASETS.register(name, loader)


def get(name: str) -> typing.Callable:
    """The loader registered as `name`.

    Example:
    >>> get("census_income") is census_income
    True
    """
    return _DATASETS.get(name)


def available() -> list[str]:
    """Names of the datasets, for `get` and a run config's `data.dataset`.

    Example:
    >>> "fashion_mnist" in available()
    True
    """
    return _DATASETS.available()


for _loader in (census_income, trump_tweets, fashion_mnist, newsgroups):
    register(_loader.__name__, _loader)

__all__ = ["available", "get", "register"]
