"""`keras-mtl train` end to end on a small real slice, and its errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from keras_mtl import cli, export

ROOT = Path(__file__).resolve().parent.parent


def keras_mtl_command():
    exe = shutil.which("keras-mtl", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "keras_mtl.cli"]


@pytest.mark.slow
def test_train_end_to_end(tmp_path):
    args = [
        "train", str(ROOT / "examples" / "census.yaml"),
        "--set", "data.limit=2000", "--set", "data.batch_size=256",
        "--set", "train.epochs=2", "--set", "output.run=r1", "--set", "train.verbose=2",
    ]
    proc = subprocess.run(
        keras_mtl_command() + args, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Test metrics (best checkpoint):" in out
    table = out.split("Test metrics (best checkpoint):")[1]
    assert "income" in table and "never_married" in table and "auc" in table
    assert "verified" in out

    # TensorBoard: per-task scalars for train and validation.
    run = tmp_path / "logs" / "census" / "r1"
    acc = EventAccumulator(str(run / "validation"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"epoch_income_loss", "epoch_never_married_auc", "epoch_loss"} <= tags
    assert (run / "config.yaml").is_file() and (run / "test_metrics.json").is_file()
    assert (tmp_path / "checkpoints" / "census" / "r1" / "best.keras").is_file()
    assert export.versions(tmp_path / "saved_models" / "census") == [1]

    # The checkpoint re-exports through the CLI as the next version, and verifies.
    assert cli.main(["export", str(tmp_path / "checkpoints/census/r1/best.keras"), str(tmp_path / "saved_models/census")]) == 0
    assert export.versions(tmp_path / "saved_models" / "census") == [1, 2]
    assert cli.main([
        "verify", str(tmp_path / "saved_models/census/2"),
        "--model", str(tmp_path / "checkpoints/census/r1/best.keras"), "--dataset", "census_income", "--rows", "8",
    ]) == 0

    # A second run with the same name is refused instead of mixing logs.
    again = subprocess.run(keras_mtl_command() + args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "already holds a run called 'r1'" in again.stderr


def test_bad_config_exits_2_with_the_key(tmp_path, capsys):
    code = cli.main(["train", str(ROOT / "examples" / "census.yaml"), "--set", "train.epoch=1"])
    assert code == 2
    assert "Unknown config key 'train.epoch'; did you mean 'train.epochs'?" in capsys.readouterr().err


def train_small(tmp_path, capsys, monkeypatch, sections: str) -> tuple[int, str]:
    """`keras-mtl train` in `tmp_path` on 300 census-income rows with the YAML `sections` (tasks, ...): (exit code, stderr)."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("name: t\ndata: {limit: 300, batch_size: 64}\n" + sections)
    return cli.main(["train", str(config)]), capsys.readouterr().err


def test_unknown_label_in_config(tmp_path, capsys, monkeypatch):
    code, err = train_small(tmp_path, capsys, monkeypatch,
                            "tasks:\n- {name: income, type: binary}\n- {name: sex, type: binary}\n")
    assert code == 2
    assert "tasks[1] ('sex') reads label 'sex', which dataset 'census_income' does not have" in err
    assert not (tmp_path / "saved_models").exists()


def test_too_small_a_data_limit_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "c.yaml").write_text("name: t\ndata: {limit: 1}\ntasks:\n- {name: income, type: binary}\n")
    monkeypatch.chdir(tmp_path)
    code, err = cli.main(["train", "c.yaml"]), capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "keras-mtl: error: data.dataset census_income with data.limit 1: Cannot split 1 row(s) in two." in err


def test_unwritable_output_folders_are_found_before_training(tmp_path, capsys, monkeypatch):
    sections = "tasks:\n- {name: income, type: binary}\n"
    (tmp_path / "blocker").write_text("a file where a folder should be")
    code, err = train_small(tmp_path, capsys, monkeypatch, sections + "output: {export_dir: blocker/exports}\n")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "output.export_dir: cannot write to blocker/exports/t: blocker is a file, not a folder." in err
    # A read-only folder (root may write anywhere, so os.access stands in for the file system).
    (tmp_path / "ro").mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p).name != "ro" and access(p, mode))
    code, err = train_small(tmp_path, capsys, monkeypatch, sections + "output: {checkpoint_dir: ro}\n")
    assert code == 2 and "output.checkpoint_dir: cannot write to ro/t/" in err and "ro is not writable" in err, err
    assert "nothing was trained" in err
    assert not (tmp_path / "logs").exists() and not (tmp_path / "saved_models").exists()


@pytest.mark.slow
def test_train_on_a_subset_of_a_datasets_tasks(tmp_path, capsys, monkeypatch):
    code, err = train_small(tmp_path, capsys, monkeypatch,
                            "tasks:\n- {name: income, type: binary}\ntrain: {epochs: 1}\n")
    assert code == 0, err
    assert export.versions(tmp_path / "saved_models" / "t") == [1]
    assert export.read_metadata(tmp_path / "saved_models" / "t" / "1")["tasks"][0]["name"] == "income"


@pytest.mark.slow
def test_train_stops_at_a_non_finite_loss_naming_the_tasks(tmp_path, capsys, monkeypatch):
    # The guard is attached by `train` itself, not by the monitoring callbacks.
    code, err = train_small(tmp_path, capsys, monkeypatch,
                            "tasks:\n- {name: income, type: binary}\n- {name: never_married, type: binary}\n"
                            "train: {epochs: 1, optimizer: sgd, learning_rate: 1.0e+30}\n")
    assert code == 1
    assert "keras-mtl: error: Training stopped at epoch 1, step " in err
    assert "non-finite loss for task(s) ['income', 'never_married']" in err
    assert not (tmp_path / "saved_models").exists()
    assert not (tmp_path / "checkpoints" / "t").exists() or not any((tmp_path / "checkpoints" / "t").iterdir())
    assert list((tmp_path / "logs" / "t").iterdir())  # the run's logs stay: they show the losses up to the stop


def test_metric_table_formatting():
    from keras_mtl.training import metric_table

    table = metric_table({"a_loss": 0.5, "a_auc": 0.9, "b_loss": 0.25, "loss": 0.75}, ["a", "b"])
    assert table.splitlines() == ["task  auc     loss", "a     0.9000  0.5000", "b     -       0.2500"]


@pytest.mark.slow
def test_train_mixture_of_two_datasets(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main([
        "train", str(ROOT / "examples" / "tweets_news_mixture.yaml"),
        "--set", "data.limit=400", "--set", "data.batch_size=64", "--set", "train.epochs=1",
        "--set", "output.run=r1", "--set", "train.verbose=0",
    ])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "Loading a mixture of tweets (trump_tweets), news (newsgroups)" in out
    metrics = json.loads((tmp_path / "logs" / "tweets_news" / "r1" / "test_metrics.json").read_text())
    assert {"device_accuracy", "coarse_accuracy"} <= set(metrics)
    assert not any(k.startswith(("fine", "log_")) for k in metrics)  # only the tasks the sources give
    assert "verified" in out and export.versions(tmp_path / "saved_models" / "tweets_news") == [1]


def test_mixture_source_without_the_label(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main([
        "train", str(ROOT / "examples" / "tweets_news_mixture.yaml"),
        "--set", "data.limit=100", "--set", "data.sources.news.tasks=[topic]",
    ])
    assert code == 2
    assert "Source 'news' (newsgroups) has no label(s) ['topic']; its labels are ['fine', 'coarse']" in capsys.readouterr().err


def test_annealed_mixture_spans_the_epochs():
    from keras_mtl import config, training

    cfg = config.load(ROOT / "examples" / "tweets_news_mixture.yaml", [
        "data.limit=200", "data.batch_size=50", "train.epochs=3", "data.sampling={name: annealed}",
    ])
    data, tasks = training.load_data(cfg, echo=lambda line: None)
    assert [t.name for t in tasks] == ["device", "coarse"]
    # One pass holds all 3 epochs (each with its own distribution): 144 train tweets
    # (200 less 20% test, less 10% validation) + 180 train posts = 324 -> 7 batches of 50.
    assert len(data.train) == 3 * 7
    _, y = next(iter(data.train))
    assert sorted(y) == ["coarse", "device"] and bool(((y["device"] == -1) != (y["coarse"] == -1)).numpy().all())


def test_os_errors_are_one_line(tmp_path, capsys):
    import keras

    import keras_mtl as mtl
    from keras_mtl import saving

    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    path = saving.save_model(model, tmp_path / "m.keras")
    (tmp_path / "plain_file").write_text("not a folder")
    # The base path runs through a file: NotADirectoryError, once a raw traceback.
    assert cli.main(["export", path, str(tmp_path / "plain_file" / "exports")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-mtl: error: ") and "Not a directory" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_run_stopped_after_training_is_finished_by_rerunning_it(tmp_path, capsys, monkeypatch):
    sections = "tasks:\n- {name: income, type: binary}\n- {name: never_married, type: binary}\ntrain: {epochs: 1}\noutput: {run: r}\n"
    code, err = train_small(tmp_path, capsys, monkeypatch, sections)
    assert code == 0, err
    # As if killed during the export: tested already, no version written, not marked finished.
    assert (tmp_path / "checkpoints" / "t" / "r" / "FINISHED").is_file()
    (tmp_path / "checkpoints" / "t" / "r" / "FINISHED").unlink()
    shutil.rmtree(tmp_path / "saved_models")
    config = tmp_path / "c.yaml"
    changed = sections.replace("train: {epochs: 1}", "train: {epochs: 1, learning_rate: 0.05}")
    config.write_text("name: t\ndata: {limit: 300, batch_size: 64}\n" + changed)
    assert cli.main(["train", str(config)]) == 2
    assert "Run 'r' was started with another config (train.learning_rate: 0.001 -> 0.05" in capsys.readouterr().err
    config.write_text("name: t\ndata: {limit: 300, batch_size: 64}\n" + sections)
    assert cli.main(["train", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Finishing" in out and "Test metrics (best checkpoint):" in out
    assert export.versions(tmp_path / "saved_models" / "t") == [1]
    assert (tmp_path / "logs" / "t" / "r" / "test_metrics.json").is_file()
    # Finished now: the same command is refused rather than exporting again.
    assert cli.main(["train", str(config)]) == 2
    assert "already holds a run called 'r'" in capsys.readouterr().err
