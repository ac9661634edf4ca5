"""An explanation's pictures, for TensorBoard and `keras-mtl report` alike.

Drawn from `Explanation.summary()` (what `explanation.json` holds), so the
report redraws them from the file without the model.
"""

from __future__ import annotations

import os

import numpy as np

from keras_mtl._events import EventWriter
from keras_mtl.report import heatmap_figure, png_pixels

# The heat maps show at most this many columns (those with the largest share in any task).
TOP_COLUMNS = 20


def _bars(task: str, summary: dict, k: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = summary["tasks"].index(task)
    importance = np.asarray(summary["importance"][t])
    order = np.argsort(-importance)[:k][::-1]  # largest at the top
    low, high = np.asarray(summary["low"][t])[order], np.asarray(summary["high"][t])[order]
    mean = importance[order]
    fig, ax = plt.subplots(figsize=(6, 0.8 + 0.3 * len(order)))
    ax.barh(range(len(order)), mean, xerr=[mean - low, high - mean], color="#c44e52", capsize=2)
    ax.set_yticks(range(len(order)), [summary["columns"][i] for i in order], fontsize=8)
    ax.set_xlabel("mean |attribution| (95% interval)", fontsize=8)
    ax.set_title(f"{task}: top columns ({summary['method']}, {summary['examples']} examples)", fontsize=10)
    return fig


def figures(summary: dict, top: int = TOP_COLUMNS) -> list[tuple[str, str, object]]:
    """`[(tag, title, matplotlib figure)]`: each task's top columns, the task x column share
    heat map, the tasks' importance similarity, and for MoE models each level's gate weights and
    each experts layer's output similarity.

    Example:
    >>> s = {"tasks": ["a"], "columns": ["x"], "importance": [[1.0]], "low": [[0.9]], "high": [[1.1]],
    ...      "shares": [[1.0]], "similarity": [[1.0]], "method": "integrated_gradients", "examples": 4,
    ...      "experts": None}
    >>> [tag for tag, _, _ in figures(s)]
    ['explain/a/top_columns', 'explain/task_column_shares', 'explain/task_similarity']
    """
    tasks, columns = summary["tasks"], summary["columns"]
    out = [(f"explain/{t}/top_columns", f"Top columns of {t}", _bars(t, summary, top)) for t in tasks]
    shares = np.asarray(summary["shares"])
    keep = np.argsort(-shares.max(0))[:top]
    out.append((
        "explain/task_column_shares",
        "Share of each task's attribution by column (shared vs task-specific)",
        heatmap_figure(shares[:, keep].T, [columns[i] for i in keep], "Share of |attribution|", tasks, share=True),
    ))
    out.append((
        "explain/task_similarity",
        "Cosine similarity of the tasks' column importance",
        heatmap_figure(summary["similarity"], tasks, "Importance similarity", share=True),
    ))
    experts = summary.get("experts") or {}
    for level in experts.get("levels", []):
        out.append((
            f"explain/experts/{level['name']}/gate_weights",
            f"Mean gate weight per task, {level['name']} (rows sum to 1)",
            heatmap_figure(level["weights"], level["gates"], "Mean gate weight", level["experts"], share=True),
        ))
    for name, matrix in experts.get("similarity", {}).items():
        labels = [f"{name}/{i}" for i in range(len(matrix))]
        out.append((
            f"explain/experts/{name}/similarity",
            f"Cosine between the outputs of {name} (near 1: collapsed experts)",
            heatmap_figure(matrix, labels, "Expert output cosine"),
        ))
    return out


def write_tensorboard(summary: dict, log_dir: str | os.PathLike, step: int = 0) -> str:
    """Writes every picture of `figures(summary)` as a TensorBoard image in `log_dir`; returns it.

    Example:
    >>> import tempfile
    >>> s = {"tasks": ["a"], "columns": ["x"], "importance": [[1.0]], "low": [[0.9]], "high": [[1.1]],
    ...      "shares": [[1.0]], "similarity": [[1.0]], "method": "integrated_gradients", "examples": 4}
    >>> log_dir = write_tensorboard(s, tempfile.mkdtemp())
    """
    writer = EventWriter(str(log_dir))
    try:
        for tag, _, fig in figures(summary):
            writer.image(tag, png_pixels(fig), step)
    finally:
        writer.close()
    return str(log_dir)
