"""Architectures: factories that return a `keras_mtl.MultiTaskModel`.

Each factory takes Keras inputs, the tasks and a trunk (and its own keyword
arguments) and returns a model whose outputs are keyed by task name.
`available()` lists the names a run config's `model.architecture` and
`get(name)` accept; `register(name)` adds a factory of your own to both.
"""

from __future__ import annotations

import typing

from keras_mtl._registry import Registry
from keras_mtl.models._aitm import aitm
from keras_mtl.models._cgc import cgc
from keras_mtl.models._cross_stitch import cross_stitch
from keras_mtl.models._esmm import esmm
from keras_mtl.models._extend import extend
from keras_mtl.models._mmoe import mmoe
from keras_mtl.models._ple import ple
from keras_mtl.models._shared_bottom import shared_bottom
from keras_mtl.models._single_task import single_task
from keras_mtl.models._soft_sharing import soft_sharing

_ARCHITECTURES = Registry("architecture")


def register(name: str, factory: typing.Callable | None = None):
    """Makes an architecture factory available as `name`, here and in a run config's `model.architecture`.

    The factory is called as `factory(inputs, tasks, trunk, **hyperparameters)`
    and returns a `MultiTaskModel`; a run config passes it those of
    `model.num_experts`, `model.expert_units`, ... that it takes as keyword
    arguments. Use it as a decorator or call it with the factory.

    Example:
    >>> @register("wide_shared_bottom")
    ... def wide_shared_bottom(inputs, tasks, trunk=None):
    ...     return shared_bottom(inputs, tasks, trunk, name="wide_shared_bottom")
    >>> get("wide_shared_bottom") is wide_shared_bottom
    True
    """
    return _ARCHITECTURES.register(name, factory)


def get(name: str) -> typing.Callable:
    """The factory registered as `name`.

    Example:
    >>> get("mmoe") is mmoe
    True
    """
    return _ARCHITECTURES.get(name)


def available() -> list[str]:
    """Names of the architectures, for `get` and a run config's `model.architecture`.

    Example:
    >>> "cgc" in available()
    True
    """
    return _ARCHITECTURES.available()


for _factory in (shared_bottom, single_task, mmoe, cgc, ple, cross_stitch, soft_sharing):
    register(_factory.__name__, _factory)

__all__ = [
    "aitm",
    "available",
    "cgc",
    "cross_stitch",
    "esmm",
    "extend",
    "get",
    "mmoe",
    "ple",
    "register",
    "shared_bottom",
    "single_task",
    "soft_sharing",
]
