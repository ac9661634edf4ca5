"""Loss balancing: how per-task losses become one training signal.

`model.compile(weighting="fixed")` or `weighting=keras_mtl.weighting.Fixed(...)`.
`available()` lists the names `get(name, **kwargs)` accepts.
"""

from __future__ import annotations

from keras_mtl.weighting.base import GradientWeighting, Weighting
from keras_mtl.weighting.aligned_mtl import AlignedMTL
from keras_mtl.weighting.cagrad import CAGrad
from keras_mtl.weighting.dwa import DWA
from keras_mtl.weighting.famo import FAMO
from keras_mtl.weighting.fixed import Fixed
from keras_mtl.weighting.gls import GLS
from keras_mtl.weighting.graddrop import GradDrop
from keras_mtl.weighting.gradnorm import GradNorm
from keras_mtl.weighting.gradvac import GradVac
from keras_mtl.weighting.imtl import IMTL
from keras_mtl.weighting.mgda import MGDA
from keras_mtl.weighting.nash_mtl import NashMTL
from keras_mtl.weighting.pcgrad import PCGrad
from keras_mtl.weighting.rlw import RLW
from keras_mtl.weighting.uncertainty import Uncertainty

_REGISTRY: dict[str, type[Weighting]] = {}


def register(cls: type[Weighting]) -> type[Weighting]:
    """Makes a `Weighting` subclass available by its `key`.

    Example:
    >>> register(Fixed) is Fixed
    True
    """
    if not cls.key:
        raise ValueError(f"{cls.__name__} needs a non-empty `key` to be registered.")
    _REGISTRY[cls.key] = cls
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
    >>> get("pcgrad", mode="representation").mode
    'representation'
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


METHODS = [
    Fixed, Uncertainty, DWA, RLW, GLS, FAMO,
    GradNorm, PCGrad, GradDrop, GradVac, MGDA, CAGrad, IMTL, AlignedMTL, NashMTL,
]
for _method in METHODS:
    register(_method)

__all__ = ["Weighting", "GradientWeighting", "available", "get", "register"] + [
    m.__name__ for m in METHODS
]
