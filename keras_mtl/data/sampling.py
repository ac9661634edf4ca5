"""Task samplers: which source the next example of a mixture comes from.

A sampler is a tiny object that turns the sizes of the sources into a
probability per source at a given epoch, like TF Model Garden's
`task_sampler`. `keras_mtl.data.mixture` evaluates it once per epoch of the
stream and draws every example's source from that distribution.

| name           | p(source i) at epoch e (0-based, of E)                       |
|----------------|---------------------------------------------------------------|
| `proportional` | n_i / sum n (as if the sources were concatenated)             |
| `uniform`      | 1 / K                                                         |
| `temperature`  | n_i^(1/T), normalised (T=1 proportional, T->inf uniform)      |
| `annealed`     | n_i^alpha, alpha = 1 - (1 - final_alpha) * e / (E - 1)        |
| `weights`      | fixed w_i, normalised                                         |

`annealed` is Stickland & Murray (2019, "BERT and PALs"): alpha goes from 1
(proportional) in the first epoch to 0.2 in the last, so large sources
dominate early and small ones catch up later. The paper counts epochs from
1 (alpha = 1 - 0.8 (e-1)/(E-1)); here epochs count from 0, the same values.
"""

from __future__ import annotations

import abc
import typing

import numpy as np

from keras_mtl._registry import Registry


class Sampler(abc.ABC):
    """Base class: a distribution over sources for each epoch.

    Subclasses implement `_unnormalised(sizes, epoch)`; `varies_by_epoch`
    tells the mixture whether it needs one distribution per epoch.
    """

    name = ""
    varies_by_epoch = False

    def probabilities(self, sizes: typing.Mapping[str, int], epoch: int = 0) -> dict[str, float]:
        """The probability of drawing from each source at `epoch` (0-based).

        Example:
        >>> Proportional().probabilities({"a": 300, "b": 100})
        {'a': 0.75, 'b': 0.25}
        """
        sizes = _check_sizes(sizes)
        raw = np.asarray(self._unnormalised(sizes, int(epoch)), dtype=np.float64)
        if not np.all(np.isfinite(raw)) or np.any(raw < 0) or raw.sum() <= 0:
            raise ValueError(f"{type(self).__name__} gave no valid distribution for sizes {sizes}.")
        p = raw / raw.sum()
        return {name: float(v) for name, v in zip(sizes, p)}

    def schedule(self, sizes: typing.Mapping[str, int], epochs: int) -> np.ndarray:
        """`(epochs, num_sources)` probabilities, one row per epoch, sources in `sizes` order.

        Example:
        >>> Uniform().schedule({"a": 3, "b": 1}, epochs=2).tolist()
        [[0.5, 0.5], [0.5, 0.5]]
        """
        return np.array([list(self.probabilities(sizes, e).values()) for e in range(int(epochs))])

    @abc.abstractmethod
    def _unnormalised(self, sizes: dict[str, int], epoch: int):
        """Non-negative weights per source (in `sizes` order) at `epoch`."""

    def get_config(self) -> dict[str, typing.Any]:
        """The constructor arguments, so that `type(s)(**s.get_config())` rebuilds the sampler.

        Example:
        >>> Temperature(3.0).get_config()
        {'temperature': 3.0}
        """
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Proportional(Sampler):
    """p ∝ source size: every example of every source is equally likely.

    Example:
    >>> Proportional().probabilities({"big": 900, "small": 100})["small"]
    0.1
    """

    name = "proportional"

    def _unnormalised(self, sizes, epoch):
        return list(sizes.values())


class Uniform(Sampler):
    """Every source equally often, whatever its size (small sources repeat).

    Example:
    >>> Uniform().probabilities({"big": 900, "small": 100})["small"]
    0.5
    """

    name = "uniform"

    def _unnormalised(self, sizes, epoch):
        return [1.0] * len(sizes)


class Temperature(Sampler):
    """p ∝ n^(1/T): between proportional (T=1) and uniform (T→∞).

    Args:
        temperature: T > 0. T=2 (square-root sampling) is a common choice
            for mixtures of very unequal sizes (e.g. multilingual models).

    Example:
    >>> round(Temperature(2.0).probabilities({"big": 900, "small": 100})["small"], 4)
    0.25
    """

    name = "temperature"

    def __init__(self, temperature: float = 2.0):
        temperature = float(temperature)
        if not temperature > 0 or not np.isfinite(temperature):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}.")
        self.temperature = temperature

    def _unnormalised(self, sizes, epoch):
        # Sizes are scaled by the largest first so that n^(1/T) cannot overflow.
        n = np.array(list(sizes.values()), dtype=np.float64)
        return (n / n.max()) ** (1.0 / self.temperature)

    def get_config(self):
        return {"temperature": self.temperature}


class Annealed(Sampler):
    """Stickland & Murray (2019): p ∝ n^alpha with alpha annealed from 1 to `final_alpha`.

    alpha(e) = 1 - (1 - final_alpha) * e / (epochs - 1) for epoch e = 0 ...
    epochs - 1 (the paper's 1 - 0.8 (e-1)/(E-1) with 1-based epochs); epochs
    past the last keep the last alpha. With `epochs=1` alpha stays 1.

    Args:
        epochs: E, the number of epochs the schedule spans.
        final_alpha: alpha in the last epoch (0.2 in the paper).

    Example:
    >>> s = Annealed(epochs=5)
    >>> [round(s.alpha(e), 2) for e in range(5)]
    [1.0, 0.8, 0.6, 0.4, 0.2]
    """

    name = "annealed"
    varies_by_epoch = True

    def __init__(self, epochs: int, final_alpha: float = 0.2):
        if int(epochs) != epochs or int(epochs) < 1:
            raise ValueError(f"Annealed: epochs must be an integer >= 1, got {epochs!r}.")
        final_alpha = float(final_alpha)
        if not 0.0 <= final_alpha <= 1.0:
            raise ValueError(f"Annealed: final_alpha must be in [0, 1], got {final_alpha}.")
        self.epochs = int(epochs)
        self.final_alpha = final_alpha

    def alpha(self, epoch: int) -> float:
        """The exponent alpha at `epoch` (0-based).

        Example:
        >>> Annealed(epochs=3).alpha(10)
        0.2
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}.")
        if self.epochs == 1:
            return 1.0
        progress = min(epoch, self.epochs - 1) / (self.epochs - 1)
        # Written from the end so that the last epoch gives final_alpha exactly.
        return self.final_alpha + (1.0 - self.final_alpha) * (1.0 - progress)

    def _unnormalised(self, sizes, epoch):
        n = np.array(list(sizes.values()), dtype=np.float64)
        return (n / n.max()) ** self.alpha(epoch)

    def get_config(self):
        return {"epochs": self.epochs, "final_alpha": self.final_alpha}


class Weights(Sampler):
    """Fixed probabilities given per source (normalised to sum to 1).

    Args:
        weights: `{source_name: weight >= 0}` naming every source, at least
            one weight > 0. A source with weight 0 is never drawn.

    Example:
    >>> Weights({"a": 3, "b": 1}).probabilities({"a": 10, "b": 1000})
    {'a': 0.75, 'b': 0.25}
    """

    name = "weights"

    def __init__(self, weights: typing.Mapping[str, float]):
        if not isinstance(weights, typing.Mapping) or not weights:
            raise ValueError(f"Weights needs a non-empty dict {{source: weight}}, got {weights!r}.")
        clean = {}
        for k, w in weights.items():
            w = float(w)
            if not w >= 0 or not np.isfinite(w):
                raise ValueError(f"Weights: the weight of {k!r} must be a finite number >= 0, got {w}.")
            clean[str(k)] = w
        if sum(clean.values()) <= 0:
            raise ValueError("Weights: at least one weight must be > 0.")
        self.weights = clean

    def _unnormalised(self, sizes, epoch):
        unknown = sorted(set(self.weights) - set(sizes))
        missing = sorted(set(sizes) - set(self.weights))
        if unknown or missing:
            raise ValueError(
                f"Weights must name exactly the sources {list(sizes)}; "
                f"unknown: {unknown}, missing: {missing}."
            )
        return [self.weights[k] for k in sizes]

    def get_config(self):
        return {"weights": dict(self.weights)}


_SAMPLERS = Registry("sampling")


def register(cls: type[Sampler]) -> type[Sampler]:
    """Makes a `Sampler` subclass available by its `name`, to `get` and to a run config's `data.sampling.name`.

    A run config passes the sampler those of its `data.sampling` keys
    (`temperature`, `final_alpha`, `weights`) that its constructor takes,
    and `epochs` (the run's) if it takes that.

    Example:
    >>> register(Uniform) is Uniform
    True
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered.")
    _SAMPLERS.register(cls.name, cls)
    return cls


def available() -> list[str]:
    """Names of the samplers, for `get` and a run config's `data.sampling.name`.

    Example:
    >>> available()
    ['annealed', 'proportional', 'temperature', 'uniform', 'weights']
    """
    return _SAMPLERS.available()


for _cls in (Proportional, Uniform, Temperature, Annealed, Weights):
    register(_cls)


def get(identifier: str | Sampler | typing.Mapping[str, float], **kwargs) -> Sampler:
    """A sampler from a name (and its constructor's arguments), a `{source: weight}` dict, or a sampler object.

    Names: "proportional", "uniform", "temperature" (T=2), "annealed" (needs
    `epochs=`), "weights" (needs `weights=`), and those you `register`.

    Example:
    >>> get("uniform"), get({"a": 1, "b": 2}), get("temperature", temperature=3)
    (Uniform(), Weights(weights={'a': 1.0, 'b': 2.0}), Temperature(temperature=3.0))
    """
    if isinstance(identifier, (Sampler, typing.Mapping)) and kwargs:
        raise ValueError("Keyword arguments are only accepted with a sampler name.")
    if isinstance(identifier, Sampler):
        return identifier
    if isinstance(identifier, typing.Mapping):
        return Weights(identifier)
    if isinstance(identifier, str) and not kwargs:
        if identifier == "annealed":
            raise ValueError(
                "sampling='annealed' needs the number of epochs it spans: pass "
                "sampling=keras_mtl.data.sampling.Annealed(epochs=E)."
            )
        if identifier == "weights":
            raise ValueError("sampling='weights' needs the weights: pass a dict {source: weight}.")
    if isinstance(identifier, str) and identifier in _SAMPLERS:
        return _SAMPLERS.get(identifier)(**kwargs)
    raise ValueError(
        f"Unknown sampling {identifier!r}: use one of {available()} (a name, a "
        "keras_mtl.data.sampling object, or a dict {source: weight})."
    )


def _check_sizes(sizes: typing.Mapping[str, int]) -> dict[str, int]:
    if not sizes:
        raise ValueError("A sampler needs at least one source.")
    out = {}
    for k, n in sizes.items():
        if int(n) != n or int(n) < 1:
            raise ValueError(f"Source {k!r} has size {n!r}; sizes must be integers >= 1.")
        out[k] = int(n)
    return out


__all__ = [
    "Annealed",
    "Proportional",
    "Sampler",
    "Temperature",
    "Uniform",
    "Weights",
    "available",
    "get",
    "register",
]
