"""`keras-mtl report LOGDIR`: one self-contained HTML page comparing the runs under LOGDIR.

Reads the TensorBoard event files back (tensorboard's own reader) plus the
JSON files runs leave beside them (affinity, expert utilisation, test
metrics) and the architecture diagram, draws PNG plots with matplotlib and
embeds them, so the page can be mailed or attached as it is.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np

from keras_mtl import diagram
from keras_mtl._logs import split_log_key

EXPLAIN_DIR = "explain"  # where `keras-mtl explain` writes a run's explanation


def _scalars(event_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in one event directory: {tag: [(step, value), ...]}."""
    if not event_dir.is_dir():
        return {}
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_dir), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    out: dict[str, list] = {}
    for tag in acc.Tags().get("tensors", []):
        events = acc.Tensors(tag)
        values = [tf.make_ndarray(e.tensor_proto) for e in events]
        if values and np.ndim(values[0]) == 0 and np.asarray(values[0]).dtype.kind == "f":
            out[tag] = [(e.step, float(v)) for e, v in zip(events, values)]
    for tag in acc.Tags().get("scalars", []):
        out[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return out


def find_runs(logdir: str | os.PathLike) -> list[Path]:
    """Run directories under `logdir`: those holding `train/` or `mtl/` event folders, or an
    `explain/` folder written by `keras-mtl explain`, or a `calibration/` folder written by
    `mtl.calibration.save_calibration`.

    Example:
    >>> find_runs("/nonexistent")
    []
    """
    root = Path(logdir)
    if not root.is_dir():
        return []
    runs = {p.parent for p in root.rglob("*") if p.is_dir() and p.name in ("train", "mtl")}
    runs |= {p.parent.parent for p in root.rglob(f"{EXPLAIN_DIR}/explanation.json")}
    runs |= {p.parent.parent for p in root.rglob("calibration/calibration.json")}
    return sorted(runs)


def png_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes; closes it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def png_pixels(fig) -> np.ndarray:
    """A matplotlib figure as (height, width, 3) uint8 pixels, for TensorBoard images; closes it."""
    import PIL.Image

    return np.asarray(PIL.Image.open(io.BytesIO(png_bytes(fig))).convert("RGB"))


def _png(fig) -> str:
    return base64.b64encode(png_bytes(fig)).decode()


def _task_names(run: Path, train: dict) -> list[str]:
    config = run / "config.yaml"
    if config.is_file():
        import yaml

        tasks = (yaml.safe_load(config.read_text()) or {}).get("tasks") or []
        names = [t["name"] for t in tasks if isinstance(t, dict) and "name" in t]
        # A conditional Binary task's entire-space metrics (`<given>_and_<task>_auc`) have a row of their own.
        names += [
            f"{t['given']}_and_{t['name']}" for t in tasks
            if isinstance(t, dict) and t.get("given") in names and t.get("type") == "binary"
        ]
        if names:
            return names
    # Without a config: the names `epoch_<task>_loss` gives, less those that are
    # another task's metric ending in `_loss` (`a_focal_loss` when `a` is a task).
    # Every task also logs `<task>_weight` in training, which tells them apart.
    names = {t[len("epoch_") : -len("_loss")] for t in train if t.endswith("_loss") and t != "epoch_loss"}
    weighted = {n for n in names if f"epoch_{n}_weight" in train}
    return sorted(weighted or names)


def _curves(run: Path, names: list[str], train: dict, val: dict) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not names:
        return None
    # Gate statistics (`epoch_<task>_gate/expert_0`) have their own section.
    # The longest task name owns a tag: with tasks `a` and `a_b`, `epoch_a_b_auc` is a_b's.
    owners = [split_log_key(t, names, prefixes=("epoch_",)) for t in train if "/" not in t]
    metrics = sorted({owner[2] for owner in owners if owner is not None})
    if not metrics:
        return None
    fig, axes = plt.subplots(len(names), len(metrics), figsize=(3.2 * len(metrics), 2.4 * len(names)), squeeze=False)
    for i, n in enumerate(names):
        for j, m in enumerate(metrics):
            ax = axes[i][j]
            for source, style, label in ((train, "-", "train"), (val, "--", "validation")):
                series = source.get(f"epoch_{n}_{m}")
                if series:
                    ax.plot([s + 1 for s, _ in series], [v for _, v in series], style, label=label)
            ax.set_title(f"{n} {m}", fontsize=9)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    return _png(fig)


def _series_plot(series: dict[str, list], title: str, ylabel: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3))
    for label, values in sorted(series.items()):
        ax.plot([s for s, _ in values], [v for _, v in values], label=label)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)
    return _png(fig)


def heatmap_figure(matrix, rows, title, columns=None, share=False):
    """A labelled matrix as a matplotlib figure: blue for negative, white 0, red for positive (scaled
    to its largest |value|), or, for `share`s in [0, 1] (gate weights), white 0 to red 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = rows if columns is None else columns
    m = np.asarray(matrix, dtype=float)
    scale = max(np.abs(m).max(), 1e-12)
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(columns), 1.0 + 0.8 * len(rows)))
    im = ax.imshow(m, cmap="Reds" if share else "RdBu_r", vmin=0.0 if share else -scale, vmax=1.0 if share else scale)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(columns)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def _heatmap(matrix, rows, title, columns=None, share=False) -> str:
    return _png(heatmap_figure(matrix, rows, title, columns, share))


def _experts(run: Path, train: dict) -> list[tuple[str, str]]:
    """MoE runs: gate entropy over epochs and the last epoch's gate × expert weights."""
    images = []
    entropy = {t[len("epoch_") : -len("/entropy")]: v for t, v in train.items() if t.endswith("/entropy")}
    plot = _series_plot(entropy, "Gate entropy (nats; log(experts) is uniform, 0 one expert)", "entropy")
    if plot:
        images.append(("Gate entropy over epochs", plot))
    experts_file = run / "mtl" / "experts.json"
    if experts_file.is_file():
        result = json.loads(experts_file.read_text())
        for level in result["levels"]:
            title = f"Expert utilisation, {level['name']} (epoch {result['epoch'] + 1}; rows sum to 1)"
            images.append(
                (title, _heatmap(level["weights"], level["gates"], "Mean gate weight", level["experts"], share=True))
            )
    return images


def _explanation(run: Path) -> tuple[list[tuple[str, str]], str]:
    """The pictures of `keras-mtl explain`'s result for this run, and its shared/task-specific table."""
    path = run / EXPLAIN_DIR / "explanation.json"
    if not path.is_file():
        return [], ""
    from keras_mtl.explanations.pictures import figures

    summary = json.loads(path.read_text())
    images = [(title, _png(fig)) for _, title, fig in figures(summary)]
    kinds = {"shared": [], "specific": []}
    for row in summary["sharing"]:
        if row["kind"] in kinds:
            kinds[row["kind"]].append(f"{row['column']} ({row['tasks']})" if row["kind"] == "specific" else row["column"])
    table = (
        f"<h3>Shared and task-specific columns ({html.escape(summary['method'])}, {summary['examples']} examples)</h3>"
        f"<p>Shared: {html.escape(', '.join(kinds['shared']) or 'none')}</p>"
        f"<p>Task-specific: {html.escape(', '.join(kinds['specific']) or 'none')}</p>"
    )
    collapsed = (summary.get("experts") or {}).get("collapsed") or []
    if collapsed:
        table += "<p class='note'>Near-identical experts (output cosine above {:.2f}): {}</p>".format(
            summary["experts"]["collapse_cosine"],
            html.escape(", ".join(f"{layer}/{i} and /{j} ({cos:.3f})" for layer, i, j, cos in collapsed)),
        )
    return images, table


def _calibration(run: Path) -> list[tuple[str, str]]:
    """The reliability diagrams of `mtl.calibration.save_calibration(report, <run>/calibration)`."""
    path = run / "calibration" / "calibration.json"
    if not path.is_file():
        return []
    from keras_mtl.calibration.pictures import reliability_figure

    return [(f"Calibration of {task}", _png(reliability_figure(task, result)))
            for task, result in json.loads(path.read_text()).items()]


def _diagram(run: Path) -> tuple[str, str] | None:
    path = run / diagram.FILENAME
    if not path.is_file():
        return None
    return ("Architecture (keras.utils.plot_model)", base64.b64encode(path.read_bytes()).decode())


def _comparisons(logdir: Path) -> str:
    """HTML tables of the `keras-mtl compare` results under `logdir`."""
    from keras_mtl.comparison import Comparison

    out = []
    for file in sorted(Path(logdir).rglob("comparison.json")):
        c = Comparison.load(file.parent)
        head, rows = c.cells()
        name = str(file.parent.relative_to(logdir)) if file.parent != Path(logdir) else file.parent.name
        out.append(
            f"<h2>Multi-task vs single-task: {html.escape(name)}</h2><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows)
            + f"</table><p class='note'>{html.escape(c.note())}</p>"
        )
    return "".join(out)


def render_report(logdir: str | os.PathLike, output: str | os.PathLike | None = None) -> str:
    """Writes the report for every run under `logdir`; returns the HTML file's path.

    Example:
    >>> import tempfile
    >>> render_report(tempfile.mkdtemp()).endswith("report.html")
    True
    """
    runs = find_runs(logdir)
    output = Path(output) if output else Path(logdir) / "report.html"
    sections, rows, columns = [], [], set()
    for run in runs:
        name = str(run.relative_to(logdir)) if run != Path(logdir) else run.name
        train, val = _scalars(run / "train"), _scalars(run / "validation")
        mtl = _scalars(run / "mtl")
        names = _task_names(run, train)
        images = []
        curves = _curves(run, names, train, val)
        if curves:
            images.append(("Per-task training curves", curves))
        weights = {n: train[f"epoch_{n}_weight"] for n in names if f"epoch_{n}_weight" in train}
        plot = _series_plot(weights, "Task weights (epoch mean)", "weight")
        if plot:
            images.append(("Task weights over epochs", plot))
        cos = {t.split("/")[-1].replace("__", " vs "): v for t, v in mtl.items() if t.startswith("conflict/cosine/")}
        plot = _series_plot(cos, "Cosine between task gradients (below 0: conflict)", "cosine")
        if plot:
            images.append(("Gradient conflict", plot))
        images += _experts(run, train)
        affinity_file = run / "mtl" / "affinity.json"
        groupings = None
        if affinity_file.is_file():
            affinity = json.loads(affinity_file.read_text())
            images.append(
                ("Task affinity (row helps column)", _heatmap(affinity["affinity"], affinity["tasks"], "Lookahead affinity"))
            )
            groupings = affinity.get("groupings")
        metrics_file = run / "test_metrics.json"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            rows.append((name, metrics))
            columns.update(metrics)
        explained = _explanation(run)
        images += explained[0] + _calibration(run)
        architecture = _diagram(run)
        if architecture:
            images.insert(0, architecture)
        body = "".join(
            f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'/>"
            for title, png in images
        ) or "<p>No event data found for this run.</p>"
        if not architecture:
            body = f"<p class='note'>{html.escape(diagram.MISSING)}</p>" + body
        if groupings:
            body += "<h3>Suggested task groupings</h3><ul>" + "".join(
                f"<li>{k} group(s): {html.escape(str(v))}</li>" for k, v in groupings.items()
            ) + "</ul>"
        body += explained[1]
        sections.append(f"<section><h2>Run {html.escape(name)}</h2>{body}</section>")
    columns = sorted(columns)
    table = ""
    if rows:
        table = (
            "<h2>Final test metrics</h2><table><tr><th>run</th>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
            + "</tr>"
            + "".join(
                f"<tr><td>{html.escape(r)}</td>"
                + "".join(f"<td>{m[c]:.4f}</td>" if c in m else "<td>-</td>" for c in columns)
                + "</tr>"
                for r, m in rows
            )
            + "</table>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>keras_mtl report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img{max-width:100%}</style></head>"
        f"<body><h1>keras_mtl report: {html.escape(str(logdir))}</h1>"
        f"<p>{len(runs)} run(s).</p>{_comparisons(Path(logdir))}{table}{''.join(sections)}</body></html>"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    tmp.write_text(page)
    os.replace(tmp, output)  # never a half-written report
    return str(output)
