"""Name -> object tables behind the `get`/`available`/`register` functions of the public modules."""

from __future__ import annotations

from typing import Any, Callable


class Registry:
    """Objects of one kind by name, e.g. the architectures of `keras_mtl.models`.

    A run config names what it uses by these names, so a name registered
    here is accepted in the YAML too. Registering a name again replaces the
    earlier object (a notebook cell run twice).

    Example:
    >>> table = Registry("colour")
    >>> _ = table.register("red", "#f00")
    >>> table.get("red"), table.available()
    ('#f00', ['red'])
    >>> table.get("blue")
    Traceback (most recent call last):
    ...
    ValueError: Unknown colour 'blue'; available: red.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Any] = {}

    def register(self, name: str, obj: Any = None) -> Any:
        """Adds `obj` as `name` and returns it; without `obj`, a decorator that does so."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"A {self.kind} name must be an identifier (letters, digits, '_'), got {name!r}.")
        if obj is None:
            def decorator(value: Callable) -> Callable:
                self._items[name] = value
                return value

            return decorator
        self._items[name] = obj
        return obj

    def get(self, name: str) -> Any:
        if not isinstance(name, str) or name not in self._items:
            raise ValueError(f"Unknown {self.kind} {name!r}; available: {', '.join(self.available())}.")
        return self._items[name]

    def available(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
