"""Which task a flat log key or layer name belongs to.

Keras logs are flat: `income_loss`, `val_income_auc`, TensorBoard's
`epoch_income_loss`. Task names may share a prefix (`a` and `a_b`), so a key
is matched against every task name and the longest one that fits wins:
`a_b_auc` is task `a_b`'s `auc`, never task `a`'s `b_auc`.
"""

from __future__ import annotations

from typing import Sequence


def owning_task(name: str, task_names: Sequence[str]) -> str | None:
    """The task `name` belongs to: the longest task name that `name` is or starts with (plus "_").

    Example:
    >>> owning_task("a_b_tower_0", ["a", "a_b"]), owning_task("a_tower_0", ["a", "a_b"])
    ('a_b', 'a')
    >>> owning_task("trunk_dense_0", ["a", "a_b"]) is None
    True
    """
    owners = [n for n in task_names if name == n or name.startswith(f"{n}_")]
    return max(owners, key=len) if owners else None


def split_log_key(
    key: str, task_names: Sequence[str], prefixes: Sequence[str] = ("", "val_")
) -> tuple[str, str, str] | None:
    """`(prefix, task, metric)` of a log key `<prefix><task>_<metric>`, or None when no task owns it.

    `prefixes` are the ones the caller's keys may carry: `""` and `"val_"`
    for `fit`'s logs, `"epoch_"` for TensorBoard tags. Where several splits
    fit (tasks `a` and `a_b`), the longest task name wins; keys of no task
    (`loss`, `val_loss`, `learning_rate`) give None.

    Example:
    >>> split_log_key("val_a_b_auc", ["a", "a_b"])
    ('val_', 'a_b', 'auc')
    >>> split_log_key("a_loss", ["a", "a_b"])
    ('', 'a', 'loss')
    >>> split_log_key("epoch_a_b_loss", ["a", "a_b"], prefixes=["epoch_"])
    ('epoch_', 'a_b', 'loss')
    >>> split_log_key("val_loss", ["a", "a_b"]) is None
    True
    """
    best = None
    for prefix in prefixes:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        task = owning_task(rest, task_names)
        if task is None or len(rest) <= len(task) + 1:  # the task's name alone names no metric
            continue
        # On equal task names the longer prefix wins: Keras puts "val_" before the task's key.
        if best is None or (len(task), len(prefix)) > (len(best[1]), len(best[0])):
            best = (prefix, task, rest[len(task) + 1:])
    return best
