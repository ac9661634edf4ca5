"""Argument checks shared by layers and factories: each error names the argument and its owner."""

from __future__ import annotations

import math
from typing import Any, Sequence


def int_at_least(value: Any, minimum: int, argument: str, owner: str) -> int:
    """`value` as an int, or a ValueError naming `argument` if it is not an integer >= `minimum`.

    Example:
    >>> int_at_least(4, 1, "num_experts", "mmoe")
    4
    >>> int_at_least(0, 1, "num_experts", "mmoe")
    Traceback (most recent call last):
    ...
    ValueError: mmoe: num_experts must be an integer >= 1, got 0.
    """
    # bool is an int subclass; True as "1 expert" is a bug, not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {argument} must be an integer >= {minimum}, got {value!r}.")
    return value


def units(value: Any, argument: str, owner: str) -> list[int]:
    """A non-empty list of positive layer widths, or a ValueError naming `argument`.

    Example:
    >>> units((64, 32), "expert_units", "mmoe")
    [64, 32]
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(
            f"{owner}: {argument} must be a non-empty list of positive integers, got {value!r}."
        )
    return [int_at_least(v, 1, f"{argument}[{i}]", owner) for i, v in enumerate(value)]


def non_negative(value: Any, argument: str, owner: str) -> float:
    """`value` as a finite float >= 0, or a ValueError naming `argument`.

    Example:
    >>> non_negative(1e-3, "penalty", "soft_sharing")
    0.001
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{owner}: {argument} must be a finite number >= 0, got {value!r}.")
    return float(value)


def fraction(value: Any, argument: str, owner: str) -> float:
    """`value` as a float in [0, 1], or a ValueError naming `argument`.

    Example:
    >>> fraction(0.9, "self_weight", "cross_stitch")
    0.9
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {argument} must be a number in [0, 1], got {value!r}.")
    return float(value)


def several_tasks(tasks, factory: str, verb: str) -> None:
    """Refuses fewer than two tasks for architectures whose columns only exist to interact.

    Example:
    >>> several_tasks([1, 2], "cross_stitch", "mixes")
    """
    if len(tasks) < 2:
        raise ValueError(
            f"{factory} {verb} the columns of two or more tasks; got {len(tasks)} task(s). "
            "Use single_task for one task."
        )
