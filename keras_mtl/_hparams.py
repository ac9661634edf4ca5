"""TensorBoard HParams for a run: its architecture, weighting and settings beside its final metrics."""

from __future__ import annotations

import os
from typing import Mapping

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp


def flatten(config: Mapping, prefix: str = "") -> dict:
    """Nested config to `{"train.epochs": 5, ...}` with HParams-friendly values (lists become strings).

    Example:
    >>> flatten({"train": {"epochs": 5, "units": [8, 4]}, "name": "x"})
    {'train.epochs': 5, 'train.units': '[8, 4]', 'name': 'x'}
    """
    out = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[path] = value
        elif value is not None:
            out[path] = str(value)
    return out


def log_hparams(run_dir: str, hparams: Mapping, metrics: Mapping[str, float], run_name: str) -> None:
    """Writes one HParams session (`hparams`) and its final metrics as `test/<name>` scalars into `run_dir`.

    Example:
    >>> import tempfile
    >>> log_hparams(tempfile.mkdtemp(), {"model.architecture": "shared_bottom"}, {"income_auc": 0.95}, "r1")
    """
    writer = tf.summary.create_file_writer(os.path.join(str(run_dir), "hparams"))
    with writer.as_default():
        hp.hparams_config(
            hparams=[hp.HParam(k) for k in hparams],
            metrics=[hp.Metric(f"test/{k}", display_name=k) for k in metrics],
        )
        hp.hparams(dict(hparams), trial_id=run_name)
        for key, value in metrics.items():
            tf.summary.scalar(f"test/{key}", float(value), step=0)
    writer.flush()
    writer.close()
