"""`model.init_from` in a run config: a run starts from a trained one and adds the config's new tasks."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mtl import cli, config as config_lib, export, saving
from test_cli import train_small

INCOME = "- {name: income, type: binary}\n"
BOTH = INCOME + "- {name: never_married, type: binary}\n"


def test_freeze_and_keep_need_init_from_and_keep_needs_a_trained_trunk(tmp_path, capsys, monkeypatch):
    code, err = train_small(tmp_path, capsys, monkeypatch, "tasks:\n" + INCOME + "model: {freeze: none}\n")
    assert code == 2 and "model.freeze and model.keep apply to a model started from another: set model.init_from" in err
    code, err = train_small(tmp_path, capsys, monkeypatch, "tasks:\n" + INCOME + "model: {init_from: x.keras, keep: distill}\n")
    assert code == 2 and "model.keep: distill keeps the old tasks while the trunk trains" in err
    code, err = train_small(tmp_path, capsys, monkeypatch, "tasks:\n" + INCOME + "model: {init_from: x.keras, freeze: all}\n")
    assert code == 2 and "model.freeze must be one of ['trunk', 'none'], got 'all'" in err


def test_init_from_a_missing_or_exported_model_is_named(tmp_path, capsys, monkeypatch):
    code, err = train_small(tmp_path, capsys, monkeypatch, "tasks:\n" + INCOME + "model: {init_from: nowhere/run}\n")
    assert code == 2 and "model.init_from: no file or folder nowhere/run." in err
    (tmp_path / "export" / "1").mkdir(parents=True)
    (tmp_path / "export" / "1" / "saved_model.pb").write_bytes(b"")
    code, err = train_small(tmp_path, capsys, monkeypatch, "tasks:\n" + INCOME + "model: {init_from: export/1}\n")
    assert code == 2 and "is a SavedModel export, which keeps no Keras layers" in err
    (tmp_path / "empty").mkdir()
    code, err = train_small(tmp_path, capsys, monkeypatch, "tasks:\n" + INCOME + "model: {init_from: empty}\n")
    assert code == 2 and "empty holds no best.keras" in err


@pytest.mark.slow
def test_a_run_adds_a_task_to_a_previous_run(tmp_path, capsys, monkeypatch):
    code, err = train_small(tmp_path, capsys, monkeypatch,
                            "tasks:\n" + INCOME + "train: {epochs: 1}\noutput: {run: first}\n")
    assert code == 0, err
    first = saving.load_model(tmp_path / "checkpoints" / "t" / "first" / "best.keras")
    code, err = train_small(tmp_path, capsys, monkeypatch,
                            "tasks:\n" + BOTH + "train: {epochs: 2}\noutput: {run: second}\n"
                            "model: {init_from: checkpoints/t/first}\n")
    assert code == 0, err
    second = saving.load_model(tmp_path / "checkpoints" / "t" / "second" / "best.keras")
    assert sorted(second.output_names) == ["income", "never_married"]
    rows = {k: tf.constant(v[:32]) for k, v in _census_rows().items()}
    # The trunk was frozen: the old task's outputs are the first run's.
    np.testing.assert_array_equal(second.predict(rows, verbose=0)["income"], first.predict(rows, verbose=0)["income"])
    assert [t["name"] for t in export.read_metadata(tmp_path / "saved_models" / "t" / "2")["tasks"]] == [
        "income", "never_married"]

    # Incompatible starts are named.
    code, err = train_small(tmp_path, capsys, monkeypatch,
                            "tasks:\n- {name: never_married, type: binary}\nmodel: {init_from: checkpoints/t/second}\n")
    assert code == 2 and "has task 'income', which this config does not list" in err
    code, err = train_small(tmp_path, capsys, monkeypatch,
                            "tasks:\n- {name: income, type: regression}\nmodel: {init_from: checkpoints/t/first}\n")
    assert code == 2 and "task 'income' is Binary(1 output(s), label 'income')" in err and "but Regression" in err

    # Fine-tuning everything with the old task kept by distillation (LwF).
    code, err = train_small(tmp_path, capsys, monkeypatch,
                            "tasks:\n" + BOTH + "train: {epochs: 1}\noutput: {run: third}\n"
                            "model: {init_from: checkpoints/t/first/best.keras, freeze: none, keep: distill}\n")
    assert code == 0, err


def _census_rows():
    from keras_mtl.data import census

    features, _ = census.read_split("test", 64)
    return features
