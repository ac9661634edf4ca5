"""Safe loading: .keras files load with safe_mode on, no code is unpickled, exported names cannot escape the base dir."""

import re
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_mtl as mtl
from keras_mtl import saving, tasks

PACKAGE = Path(mtl.__file__).parent


@pytest.mark.slow
@pytest.mark.parametrize("factory", ["shared_bottom", "mmoe", "cross_stitch"])
def test_keras_files_load_with_safe_mode_on(tmp_path, factory):
    task_list = [tasks.Binary("a", tower=[2]), tasks.Multiclass("k", 3)]
    model = getattr(mtl.models, factory)(keras.Input((4,), name="x"), task_list)
    model.compile(optimizer="adam", weighting="uncertainty")
    path = saving.save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(path) as z:
        config = z.read("config.json").decode()
    # Lambda layers and pickled lambdas (`__lambda__`) are what need safe_mode=False.
    assert '"Lambda"' not in config and "__lambda__" not in config
    loaded = saving.load_model(path)  # safe_mode=True, Keras' default
    x = np.ones((2, 4), "float32")
    for name, want in model.predict(x, verbose=0).items():
        np.testing.assert_allclose(loaded.predict(x, verbose=0)[name], want, rtol=1e-6)


def test_loading_with_safe_mode_off_is_refused(tmp_path):
    path = saving.save_model(mtl.models.shared_bottom(keras.Input((2,)), [tasks.Binary("a")]), tmp_path / "m.keras")
    with pytest.raises(ValueError, match="keras_mtl models load with safe_mode=True"):
        saving.load_model(path, safe_mode=False)


def test_a_keras_file_with_lambda_code_is_refused(tmp_path):
    x = keras.Input((2,))
    foreign = keras.Model(x, keras.layers.Lambda(lambda t: t * 2)(x))
    path = tmp_path / "foreign.keras"
    foreign.save(path)
    with pytest.raises(saving.UnsafeModelFileError, match=r"foreign.keras holds a Lambda layer with Python code"):
        saving.load_model(path)  # Keras' safe mode refuses to run the pickled lambda


def test_the_cli_refuses_a_lambda_file_in_one_line_and_writes_nothing(tmp_path, capsys):
    from keras_mtl import cli

    x = keras.Input((2,))
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2)(x)).save(tmp_path / "foreign.keras")
    for command in (["export", str(tmp_path / "foreign.keras"), str(tmp_path / "exports")],
                    ["predict", str(tmp_path / "foreign.keras"), str(tmp_path / "rows.csv"), "-o", str(tmp_path / "s.csv")]):
        (tmp_path / "rows.csv").write_text("x\n1\n")
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("keras-mtl: error: ") and "holds a Lambda layer" in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "exports").exists() and not (tmp_path / "s.csv").exists()


UNSAFE = {
    r"\blayers\.Lambda\b|\bLambda\(": "Lambda layers",
    r"^\s*(import|from) (pickle|dill|cloudpickle|marshal)\b": "pickle-like modules",
    r"\byaml\.(load|unsafe_load|full_load)\(": "YAML loaders other than safe_load",
    r"safe_mode\s*=\s*False\s*[,)]": "safe_mode=False",
    r"\beval\(|\bexec\(": "eval/exec",
}


def test_source_has_no_unsafe_loading():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#") or '"safe_mode") is False' in line:
                continue
            for pattern, what in UNSAFE.items():
                if re.search(pattern, line):
                    found.append(f"{path.relative_to(PACKAGE)}:{number}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_export_refuses_task_names_that_would_escape(tmp_path):
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [tasks.Binary("a")])
    model.tasks[0].name = "../../escape"  # bypassing Task's own check, e.g. an edited config
    with pytest.raises(ValueError, match=r"Invalid task name '../../escape'"):
        mtl.export.export_saved_model(model, tmp_path / "base")
    assert not (tmp_path / "base").exists() and not any(tmp_path.parent.glob("escape*"))


@pytest.mark.parametrize("bad", ["../x", "a/b", "a b", ".hidden", ""])
def test_serving_model_names_are_validated(tmp_path, bad):
    with pytest.raises(Exception, match="Invalid model name"):
        mtl.export.model_entry(bad, tmp_path)
