"""Reliability diagrams of a calibration, for TensorBoard and `keras-mtl report`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keras_mtl._events import EventWriter

# Where a run's calibration goes (`<run>/calibration/calibration.json`), for the report to find.
CALIBRATION_DIR = "calibration"


def reliability_figure(task: str, result: dict):
    """Observed rate against mean predicted probability per bin, before and after calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="perfectly calibrated")
    for key, color in (("before", "#c44e52"), ("after", "#4c72b0")):
        r = result[key]
        ax.plot(r["confidence"], r["rate"], marker="o", ms=3, color=color,
                label=f"{key}: ECE {r['ece']:.3f}, log loss {r['logloss']:.3f}")
    ax.set_xlabel("mean predicted probability", fontsize=8)
    ax.set_ylabel("observed rate", fontsize=8)
    ax.set_title(f"{task}: reliability ({result['method']})", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def save_calibration(report: dict, directory: str | os.PathLike, step: int = 0) -> str:
    """Writes `report` (a calibrated model's `.calibration`) as `calibration.json` and one
    TensorBoard reliability diagram per task (`calibration/<task>`) to `directory`; returns it.

    Example:
    >>> import tempfile
    >>> r = {"ece": 0.1, "logloss": 0.5, "confidence": [0.2, 0.8], "rate": [0.3, 0.7]}
    >>> out = save_calibration({"click": {"method": "platt", "a": 1.0, "b": 0.0, "before": r, "after": r}},
    ...                        tempfile.mkdtemp())
    >>> sorted(os.listdir(out))[0]
    'calibration.json'
    """
    from keras_mtl.report import png_pixels

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / ".calibration.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, directory / "calibration.json")
    writer = EventWriter(str(directory))
    try:
        for task, result in report.items():
            writer.image(f"calibration/{task}", png_pixels(reliability_figure(task, result)), step)
    finally:
        writer.close()
    return str(directory)
