"""`mtl.compare` / `keras-mtl compare`: Δm arithmetic, paired seed noise, shared seeds and budgets, groupings."""

import json
import math

import numpy as np
import pandas as pd
import pytest

import keras_mtl as mtl
from keras_mtl import comparison
from keras_mtl import config as config_lib


# ------------------------------------------------------------------ arithmetic
def test_delta_m_by_hand():
    # a: AUC 0.80 -> 0.84 (+5%); b: accuracy 0.50 -> 0.45 (-10%); c: MAE 4 -> 3 (lower is better: +25%).
    multi = {"a": 0.84, "b": 0.45, "c": 3.0}
    single = {"a": 0.80, "b": 0.50, "c": 4.0}
    lower = {"a": False, "b": False, "c": True}
    assert comparison.delta_m(multi, single, lower) == pytest.approx(100 * (0.05 - 0.10 + 0.25) / 3)
    assert comparison.delta_m(single, single, lower) == 0.0


@pytest.mark.parametrize(
    "multi, single, lower, message",
    [
        ({"a": 1.0}, {"b": 1.0}, {"a": False, "b": False}, "the same tasks"),
        ({"a": 1.0}, {"a": 1.0}, {}, "a direction for each"),
        ({"a": 1.0}, {"a": 0.0}, {"a": False}, "task 'a' has single-task metric 0"),
        ({}, {}, {}, "at least one task"),
    ],
)
def test_delta_m_refuses_what_it_cannot_compute(multi, single, lower, message):
    with pytest.raises(ValueError, match=message):
        comparison.delta_m(multi, single, lower)


def test_paired_difference_by_hand():
    # Differences 0.02, 0.00, 0.01: mean 0.01, sd 0.01, t(0.975, 2) = 4.3027 -> half-width 0.02484.
    mean, half, significant = comparison.paired_difference([0.92, 0.90, 0.91], [0.90, 0.90, 0.90])
    assert mean == pytest.approx(0.01)
    assert half == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)
    assert significant is False  # 0.01 < 0.0248: within the seed noise
    assert comparison.paired_difference([0.5], [0.4])[2] is None  # one seed: no noise estimate
    with pytest.raises(ValueError, match="equally long"):
        comparison.paired_difference([1.0, 2.0], [1.0])


def test_lower_is_better_by_metric_name():
    assert [comparison.lower_is_better(m) for m in ("auc", "accuracy", "mae", "rmse", "loss", "mean_squared_error")] == [
        False, False, True, True, True, True,
    ]


@pytest.mark.parametrize(
    "text, message",
    [("a,b|x", "unknown task\\(s\\) \\['x'\\]"), ("a|a,b", "exactly once"), ("a,b||c", "exactly once"), ("a", "exactly once")],
)
def test_parse_groups_errors_name_the_grouping(text, message):
    assert comparison.parse_groups("a, b | c", ["a", "b", "c"]) == [["a", "b"], ["c"]]
    with pytest.raises(ValueError, match=message):
        comparison.parse_groups(text, ["a", "b", "c"])


# ------------------------------------------------------------------ the runs
def small_table(n=600, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "city": rng.choice(["a", "b", "c"], n)})
    df["y1"] = (df.x1 + 0.3 * rng.normal(size=n) > 0).astype(float)
    df["y2"] = (df.x1 + df.x2 > 0).astype(float)
    df["y3"] = 10 + 3 * df.x2 + rng.normal(size=n)
    return df


def table_config(tmp_path, tasks=("y1", "y2"), epochs=1):
    small_table().to_csv(tmp_path / "t.csv", index=False)
    kinds = {"y1": "binary", "y2": "binary", "y3": "regression"}
    return config_lib.from_dict(
        config_lib.Config,
        {
            "name": "t",
            "data": {"path": str(tmp_path / "t.csv"), "batch_size": 64},
            "tasks": [{"name": t, "type": kinds[t]} for t in tasks],
            "model": {"trunk": {"units": [8]}},
            "train": {"epochs": epochs, "seed": 5},
        },
    )


def test_baselines_and_multi_task_runs_share_seeds_and_budgets(tmp_path, monkeypatch):
    """Every model of a seed is trained with that seed, the config's epochs and batch size; the
    table's Δm is computed from the recorded per-seed metrics."""
    calls = []
    fake = {  # (architecture, seed) -> per-task AUC
        ("single_task", 5): {"y1": 0.80, "y2": 0.60}, ("single_task", 6): {"y1": 0.82, "y2": 0.62},
        ("shared_bottom", 5): {"y1": 0.84, "y2": 0.57}, ("shared_bottom", 6): {"y1": 0.86, "y2": 0.59},
    }

    def record(cfg, data, tasks, strategy, callbacks=()):
        calls.append((cfg.model.architecture, cfg.train.weighting, cfg.train.seed, cfg.train.epochs,
                      cfg.data.batch_size, [t.name for t in tasks], len(data.columns["train"][0]["x1"])))
        scores = fake[(cfg.model.architecture, cfg.train.seed)]
        return {f"{t.name}_auc": scores[t.name] for t in tasks}

    monkeypatch.setattr(comparison, "_train_group", record)
    result = mtl.compare(table_config(tmp_path), seeds=2, output_dir=tmp_path / "out", echo=lambda line: None)

    assert sorted(calls) == sorted([
        ("single_task", "fixed", 5, 1, 64, ["y1"], 480), ("single_task", "fixed", 5, 1, 64, ["y2"], 480),
        ("shared_bottom", "fixed", 5, 1, 64, ["y1", "y2"], 480),
        ("single_task", "fixed", 6, 1, 64, ["y1"], 480), ("single_task", "fixed", 6, 1, 64, ["y2"], 480),
        ("shared_bottom", "fixed", 6, 1, 64, ["y1", "y2"], 480),
    ])
    assert result.seeds == [5, 6] and result.metrics == {"y1": "auc", "y2": "auc"}
    # Seed 5: (+5% - 5%)/2 = 0; seed 6: (0.04/0.82 - 0.03/0.62)/2.
    assert result.delta_m("shared_bottom/fixed") == pytest.approx(
        [100 * (0.04 / 0.80 - 0.03 / 0.60) / 2, 100 * (0.04 / 0.82 - 0.03 / 0.62) / 2]
    )
    saved = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert saved["scores"]["single_task"]["y1"] == [0.80, 0.82]
    rows = pd.read_csv(tmp_path / "out" / "comparison.csv")
    y1 = rows[(rows.setting == "shared_bottom/fixed") & (rows.task == "y1")].iloc[0]
    assert y1.difference == pytest.approx(0.04) and bool(y1.better)
    # Differences 0.04 and 0.04 have no spread: beyond the seed noise.
    assert bool(y1.exceeds_noise)
    table = result.table()
    assert "shared_bottom/fixed" in table and "+0.0400*" in table and "-0.0300*" in table
    # `keras-mtl report` shows the same table, read back from the saved comparison.
    from keras_mtl import report

    page = open(report.render_report(tmp_path / "out")).read()
    assert "Multi-task vs single-task" in page and "<td>0.8500 ± 0.0141 +0.0400*</td>" in page


def test_groupings_reuse_single_task_runs(tmp_path, monkeypatch):
    calls = []

    def record(cfg, data, tasks, strategy, callbacks=()):
        calls.append((cfg.model.architecture, tuple(t.name for t in tasks)))
        return {f"{t.name}_{'mae' if t.name == 'y3' else 'auc'}": 0.7 for t in tasks}

    monkeypatch.setattr(comparison, "_train_group", record)
    cfg = table_config(tmp_path, tasks=("y1", "y2", "y3"))
    result = mtl.compare(cfg, seeds=1, groupings=[[["y1", "y2"], ["y3"]]], variants=[("mmoe", "uncertainty")],
                         output_dir=tmp_path / "out", echo=lambda line: None)
    assert [s.name for s in result.settings] == ["single_task", "mmoe/uncertainty", "groups y1,y2 | y3"]
    # y3's single-task model serves the grouping too: 3 singles, all-in-one, and the y1+y2 model.
    assert calls == [("single_task", ("y1",)), ("single_task", ("y2",)), ("single_task", ("y3",)),
                     ("mmoe", ("y1", "y2", "y3")), ("mmoe", ("y1", "y2"))]
    assert result.lower == {"y1": False, "y2": False, "y3": True}
    with pytest.raises(ValueError, match="exactly once"):
        mtl.compare(cfg, seeds=1, groupings=[[["y1"], ["y3"]]], echo=lambda line: None)
    with pytest.raises(ValueError, match="metrics\\['y1'\\] = 'rmse'"):
        mtl.compare(cfg, seeds=1, metrics={"y1": "rmse"}, echo=lambda line: None)


@pytest.mark.slow
def test_compare_trains_real_models_and_suggests_groupings(tmp_path):
    cfg = table_config(tmp_path, tasks=("y1", "y2", "y3"), epochs=2)
    result = mtl.compare(cfg, seeds=1, suggest_groups=True, output_dir=tmp_path / "out", echo=lambda line: None)
    names = [s.name for s in result.settings]
    assert names[:2] == ["single_task", "shared_bottom/fixed"] and names[2].startswith("groups ")
    affinity = json.loads((tmp_path / "out" / "affinity" / "mtl" / "affinity.json").read_text())
    assert affinity["tasks"] == ["y1", "y2", "y3"] and affinity["measurements"] >= 2
    # y1 and y2 read the same signal (x1): learned, their AUCs are far above chance.
    assert result.scores["single_task"]["y1"][0] > 0.8
    assert result.scores["shared_bottom/fixed"]["y3"][0] < 3.0  # MAE in hours' units (std of y3 is 3.2)
    assert (tmp_path / "out" / "runs").is_dir()


@pytest.mark.slow
def test_keras_mtl_compare_cli(tmp_path, capsys, monkeypatch):
    from keras_mtl import cli

    monkeypatch.chdir(tmp_path)
    small_table().to_csv("t.csv", index=False)
    (tmp_path / "c.yaml").write_text(
        "name: t\ndata: {path: t.csv, batch_size: 64}\nmodel: {trunk: {units: [8]}}\n"
        "tasks:\n- {name: y1, type: binary}\n- {name: y3, type: regression}\ntrain: {epochs: 1}\n"
    )
    assert cli.main(["compare", "c.yaml", "--seeds", "2", "--weightings", "fixed,uncertainty", "-o", "out"]) == 0
    out = capsys.readouterr().out
    assert "shared_bottom/uncertainty" in out and "y3 (mae)" in out and "Δm" in out
    assert json.loads((tmp_path / "out" / "comparison.json").read_text())["seeds"] == [0, 1]
    assert cli.main(["compare", "c.yaml", "--architectures", "nope"]) == 2
    assert "model.architecture" in capsys.readouterr().err
    assert cli.main(["compare", "c.yaml", "--group", "y1|zz"]) == 2
    assert "unknown task(s) ['zz']" in capsys.readouterr().err


# ------------------------------------------------------------------ label-scarce data
def test_keep_labels_marks_the_rest_missing_in_train_only():
    rng = np.random.default_rng(0)
    n = 200
    cols = {
        s: ({"x": rng.normal(size=n).astype("float32")},
            {"y": rng.integers(0, 2, n).astype("float32"), "k": rng.integers(0, 3, n), "h": rng.integers(10, 60, n)})
        for s in ("train", "validation", "test")
    }
    tasks = [mtl.tasks.Binary("y"), mtl.tasks.Multiclass("k", num_classes=3), mtl.tasks.Regression("h")]
    data = mtl.data.MultiTaskData.from_splits("d", None, tasks, cols, batch_size=50, seed=3)
    scarce = data.keep_labels({"y": 0.1, "k": 0.25, "h": 0.5})
    labels = scarce.columns["train"][1]
    assert np.isfinite(labels["y"]).sum() == 20
    assert (labels["k"] != -1).sum() == 50 and labels["k"].dtype == cols["train"][1]["k"].dtype
    assert np.isfinite(labels["h"]).sum() == 100  # integer hours became floats to hold NaN
    kept = np.isfinite(labels["y"])
    np.testing.assert_array_equal(labels["y"][kept], cols["train"][1]["y"][kept])
    assert scarce.columns["test"] is data.columns["test"]  # evaluation keeps every label
    # Seeded: the same rows again; the original data is untouched.
    np.testing.assert_array_equal(np.isfinite(data.keep_labels({"y": 0.1}).columns["train"][1]["y"]), kept)
    assert np.isfinite(data.columns["train"][1]["y"]).all()
    with pytest.raises(ValueError, match="no task 'z'"):
        data.keep_labels({"z": 0.5})
    with pytest.raises(ValueError, match="task 'y' must be in \\(0, 1\\], got 0"):
        data.keep_labels({"y": 0})


def test_config_keep_labels_reaches_every_run(tmp_path, monkeypatch):
    seen = []

    def record(cfg, data, tasks, strategy, callbacks=()):
        seen.append(int(np.isfinite(data.columns["train"][1]["y1"]).sum()))
        return {f"{t.name}_auc": 0.7 for t in tasks}

    monkeypatch.setattr(comparison, "_train_group", record)
    cfg = table_config(tmp_path)
    cfg.data.keep_labels = {"y1": 0.05}
    mtl.compare(cfg, seeds=1, echo=lambda line: None)
    assert seen == [24, 24, 24]  # 5% of 480 training rows, for the baselines and the multi-task model alike
    for bad, message in [({"y1": 1.5}, "data.keep_labels.y1 must be a fraction in \\(0, 1\\], got 1.5"),
                         ({"zz": 0.5}, "data.keep_labels: no task 'zz'")]:
        with pytest.raises(config_lib.ConfigError, match=message):
            cfg.data.keep_labels = bad
            cfg.data.check("data")
            mtl.compare(cfg, seeds=1, echo=lambda line: None)
