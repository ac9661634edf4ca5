"""Flat log keys belong to the longest task name that fits: with tasks `a` and `a_b`, `a_b_auc` is a_b's."""

import types
from pathlib import Path

import pytest

from keras_mtl import callbacks, report
from keras_mtl._logs import owning_task, split_log_key
from keras_mtl.training import metric_table

NAMES = ["a", "a_b"]


@pytest.mark.parametrize("key, prefixes, expected", [
    ("a_b_auc", ("", "val_"), ("", "a_b", "auc")),
    ("a_auc", ("", "val_"), ("", "a", "auc")),
    ("a_bc_auc", ("", "val_"), ("", "a", "bc_auc")),  # `a_bc` is no task: a's metric `bc_auc`
    ("val_a_b_loss", ("", "val_"), ("val_", "a_b", "loss")),
    ("val_a_loss", ("", "val_"), ("val_", "a", "loss")),
    ("epoch_a_b_auc", ("epoch_",), ("epoch_", "a_b", "auc")),
    ("loss", ("", "val_"), None),
    ("val_loss", ("", "val_"), None),
    ("a_b", ("", "val_"), None),  # a task name alone is no metric
    ("learning_rate", ("", "val_"), None),
])
def test_split_log_key_prefers_the_longest_task_name(key, prefixes, expected):
    assert split_log_key(key, NAMES, prefixes) == expected


def test_owning_task():
    assert owning_task("a_b", NAMES) == "a_b"
    assert owning_task("a_b_tower_0", NAMES) == "a_b"
    assert owning_task("a_tower_0", NAMES) == "a"
    assert owning_task("ab", NAMES) is None


def test_metric_table_does_not_give_a_the_metrics_of_a_b():
    table = metric_table({"a_loss": 0.5, "a_auc": 0.9, "a_b_loss": 0.25, "a_b_auc": 0.75, "loss": 0.75}, NAMES)
    header, row_a, row_ab = table.splitlines()
    assert header.split() == ["task", "auc", "loss"]  # no `b_auc`/`b_loss` columns
    assert row_a.split() == ["a", "0.9000", "0.5000"]
    assert row_ab.split() == ["a_b", "0.7500", "0.2500"]


def test_task_scalars_write_each_key_under_its_own_task(tmp_path):
    cb = callbacks.TaskScalars(str(tmp_path))
    model = types.SimpleNamespace(tasks=[types.SimpleNamespace(name=n) for n in NAMES], optimizer=None)
    cb.set_model(model)
    cb.on_epoch_end(0, {"a_auc": 0.9, "a_b_auc": 0.75, "val_a_b_loss": 0.5, "loss": 1.0})
    cb.on_train_end()
    tags = report._scalars(Path(tmp_path) / "mtl")
    assert sorted(tags) == ["a/auc", "a_b/auc", "a_b/val_loss"]
    assert tags["a_b/auc"][0][1] == pytest.approx(0.75)


def test_report_curves_and_task_names(monkeypatch, tmp_path):
    train = {
        f"epoch_{key}": [(0, 1.0), (1, 0.5)]
        for key in ("loss", "a_loss", "a_auc", "a_weight", "a_focal_loss", "a_b_loss", "a_b_auc", "a_b_weight")
    }
    # No config.yaml: the names come from the tags; `a_focal_loss` is a's metric, not a task.
    assert report._task_names(tmp_path, train) == NAMES
    figures = []
    monkeypatch.setattr(report, "_png", lambda fig: figures.append(fig) or "png")
    assert report._curves(tmp_path, NAMES, train, {}) == "png"
    titles = sorted(ax.get_title() for ax in figures[0].axes)
    assert titles == [f"{n} {m}" for n in NAMES for m in ("auc", "focal_loss", "loss", "weight")]
