"""Loss balancing: how per-task losses become one training signal.

`model.compile(weighting="fixed")` or `weighting=keras_mtl.weighting.Fixed(...)`.
`available()` lists the names `get(name, **kwargs)` accepts.
"""

from __future__ import annotations

from keras_mtl.weighting.base import Weighting
from keras_mtl.weighting.fixed import Fixed

_REGISTRY: dict[str, type[Weighting]] = {}


def register(cls: type[Weighting]) -> type[Weighting]:
    """Makes a `Weighting` subclass available by its `name`.

    Example:
    >>> register(Fixed) is Fixed
    True
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered.")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of the weighting methods, for `compile(weighting=...)` and `get`.

    Example:
    >>> "fixed" in available()
    True
    """
    return sorted(_REGISTRY)


def get(identifier: str | Weighting | None = None, **kwargs) -> Weighting:
    """Builds a weighting method from its name (or passes an instance through).

    Example:
    >>> get("fixed")
    Fixed({'weights': None})
    """
    if identifier is None:
        identifier = "fixed"
    if isinstance(identifier, Weighting):
        if kwargs:
            raise ValueError("Keyword arguments are only accepted with a weighting name.")
        return identifier
    if not isinstance(identifier, str) or identifier not in _REGISTRY:
        raise ValueError(
            f"Unknown weighting method {identifier!r}; available: {', '.join(available())}."
        )
    return _REGISTRY[identifier](**kwargs)


register(Fixed)

__all__ = ["Weighting", "Fixed", "available", "get", "register"]
