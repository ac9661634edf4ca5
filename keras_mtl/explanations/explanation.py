"""What `explain` returns: per-example attributions by raw column, and the multi-task summaries."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

# A column "matters" for a task when it holds at least this share of the task's total
# |attribution|, or twice an even share (2 / columns) where that is less: 5% on 40 columns.
SHARE_THRESHOLD = 0.1


def default_threshold(num_columns: int) -> float:
    """The share a column needs to matter for a task: 10%, or 2 / columns on wide tables.

    Example:
    >>> default_threshold(4), default_threshold(40)
    (0.1, 0.05)
    """
    return min(SHARE_THRESHOLD, 2.0 / max(num_columns, 1))


@dataclasses.dataclass
class TokenAttributions:
    """A text input explained token by token: `tokens[i, j]` is example i's j-th token ("" for
    padding) and `attributions[task][i, j]` its credit; they sum over j to the column's credit."""

    tokens: np.ndarray
    attributions: dict

    def top(self, task: str, row: int, k: int = 5) -> list[tuple[str, float]]:
        """Example `row`'s `k` tokens with the largest |credit| for `task`, as (token, credit)."""
        credit = self.attributions[task][row]
        order = [j for j in np.argsort(-np.abs(credit)) if self.tokens[row, j] != ""][:k]
        return [(str(self.tokens[row, j]), float(credit[j])) for j in order]


@dataclasses.dataclass
class Explanation:
    """Per-task attributions of a model's outputs to its raw input columns.

    Attributes:
        tasks: the tasks explained, in the model's order.
        columns: the raw input columns (a matrix input `x` of width k is
            `x[0]` .. `x[k-1]`; a feature cross of `a` and `b` is `a_X_b`).
        attributions: `{task: (examples, columns) array}`.
        outputs: `{task: (examples,)}` the explained output at each example
            (a Binary task's probability, a Multiclass task's probability
            of the class in `targets`, a Regression's value).
        baseline_outputs: `{task: (examples,)}` the same output at the baseline.
        targets: `{task: (examples,)}` the output unit explained (0 for
            one-unit outputs, the predicted class of a Multiclass task).
        tokens: `{column: TokenAttributions}` for text inputs.
        experts: the expert usage of a MoE model (`ExpertUsage`), or None.
        method, steps: how the attributions were computed.
    """

    tasks: list
    columns: list
    attributions: dict
    outputs: dict
    baseline_outputs: dict
    targets: dict
    tokens: dict = dataclasses.field(default_factory=dict)
    experts: object = None
    method: str = "integrated_gradients"
    steps: int = 64

    @property
    def num_examples(self) -> int:
        return len(next(iter(self.attributions.values())))

    def completeness_gap(self) -> dict[str, float]:
        """`{task: max |sum of credits - (f(x) - f(baseline))|}` over examples: how far the
        quadrature is from exact integrated gradients (0 up to float error for a smooth model)."""
        return {
            t: float(np.max(np.abs(self.attributions[t].sum(1) - (self.outputs[t] - self.baseline_outputs[t]))))
            for t in self.tasks
        }

    def importance(self) -> pd.DataFrame:
        """Global importance, tasks x columns: the mean |attribution| over examples."""
        return pd.DataFrame(
            [np.abs(self.attributions[t]).mean(0) for t in self.tasks], index=self.tasks, columns=self.columns
        )

    def interval(self, z: float = 1.96) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(low, high) of the importance: a normal-approximation interval over examples
        (mean |attribution| +- z standard errors; 95% for the default z)."""
        mean = self.importance()
        sem = pd.DataFrame(
            [np.abs(self.attributions[t]).std(0, ddof=1) / np.sqrt(max(self.num_examples, 1)) for t in self.tasks]
            if self.num_examples > 1 else np.zeros(mean.shape),
            index=self.tasks, columns=self.columns,
        )
        return mean - z * sem, mean + z * sem

    def shares(self) -> pd.DataFrame:
        """The importance as each task's shares (rows sum to 1): tasks compare on one scale."""
        imp = self.importance()
        return imp.div(imp.sum(1).where(imp.sum(1) > 0, 1.0), axis=0)

    def similarity(self) -> pd.DataFrame:
        """tasks x tasks cosine similarity of their importance vectors: 1 when two tasks rely on
        the same columns in the same proportions, 0 when they share none."""
        imp = self.importance().to_numpy()
        norm = np.linalg.norm(imp, axis=1, keepdims=True)
        unit = imp / np.where(norm > 0, norm, 1.0)
        return pd.DataFrame(unit @ unit.T, index=self.tasks, columns=self.tasks)

    def sharing(self, threshold: float | None = None) -> pd.DataFrame:
        """Per column: the tasks it matters for (share >= `threshold`; default
        `default_threshold(len(columns))`) and whether it is `shared` (two tasks
        or more), `specific` (one) or `minor` (none)."""
        threshold = default_threshold(len(self.columns)) if threshold is None else threshold
        shares = self.shares()
        rows = []
        for column in self.columns:
            users = [t for t in self.tasks if shares.loc[t, column] >= threshold]
            kind = "shared" if len(users) > 1 else "specific" if users else "minor"
            rows.append({"column": column, "kind": kind, "tasks": ",".join(users),
                         **{f"share_{t}": float(shares.loc[t, column]) for t in self.tasks}})
        return pd.DataFrame(rows).set_index("column")

    def top(self, task: str, k: int = 10) -> pd.Series:
        """`task`'s `k` most important columns (mean |attribution|), largest first."""
        if task not in self.tasks:
            raise KeyError(f"No task {task!r} in this explanation; it has {self.tasks}.")
        return self.importance().loc[task].sort_values(ascending=False).head(k)

    def frame(self, task: str) -> pd.DataFrame:
        """`task`'s per-example attributions, one column per raw input column, plus the output,
        its baseline value and the unit explained."""
        if task not in self.tasks:
            raise KeyError(f"No task {task!r} in this explanation; it has {self.tasks}.")
        out = pd.DataFrame(self.attributions[task], columns=self.columns)
        out["_output"] = self.outputs[task]
        out["_baseline_output"] = self.baseline_outputs[task]
        out["_target"] = self.targets[task]
        return out

    def summary(self) -> dict:
        """Everything but the per-example numbers, as JSON-ready values."""
        low, high = self.interval()
        imp = self.importance()
        return {
            "method": self.method,
            "steps": self.steps,
            "examples": self.num_examples,
            "tasks": list(self.tasks),
            "columns": list(self.columns),
            "importance": imp.to_numpy().tolist(),
            "low": low.to_numpy().tolist(),
            "high": high.to_numpy().tolist(),
            "shares": self.shares().to_numpy().tolist(),
            "similarity": self.similarity().to_numpy().tolist(),
            "sharing": self.sharing().reset_index().to_dict(orient="records"),
            "sharing_threshold": default_threshold(len(self.columns)),
            "completeness_gap": self.completeness_gap(),
            "experts": self.experts.summary() if self.experts is not None else None,
        }

    def save(self, directory: str | os.PathLike) -> str:
        """Writes `explanation.json` (the summary), `importance.csv` (task, column, importance,
        its interval and share) and `attributions_<task>.csv` (per example) to `directory`.
        Returns the directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        low, high = self.interval()
        shares = self.shares()
        rows = [
            {"task": t, "column": c, "importance": float(self.importance().loc[t, c]),
             "low": float(low.loc[t, c]), "high": float(high.loc[t, c]), "share": float(shares.loc[t, c])}
            for t in self.tasks for c in self.columns
        ]
        files = {"importance.csv": pd.DataFrame(rows).to_csv(index=False)}
        for t in self.tasks:
            files[f"attributions_{t}.csv"] = self.frame(t).to_csv(index=False)
        files["explanation.json"] = json.dumps(self.summary(), indent=1)
        for name, text in files.items():  # each file whole or not at all
            tmp = directory / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, directory / name)
        return str(directory)
