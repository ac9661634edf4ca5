"""What the README reaches after `import keras_mtl as mtl` is there, and module namespaces hold only their own names."""

import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import keras_mtl
from keras_mtl import tasks

ROOT = Path(__file__).resolve().parents[1]


def readme_modules() -> list[str]:
    """Every keras_mtl submodule the README writes as `mtl.<module>` or `keras_mtl.<module>`."""
    package = ROOT / "keras_mtl"
    text = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\b(?:mtl|keras_mtl)\.([a-z_]+)", text))
    return sorted(n for n in named if (package / f"{n}.py").is_file() or (package / n / "__init__.py").is_file())


def test_every_module_the_readme_uses_is_reachable_after_import():
    modules = readme_modules()
    assert {"callbacks", "diagnostics", "distribute", "saving"} <= set(modules)
    modules = sorted(set(modules) | {"config"})  # `keras-mtl train`'s config, for Python callers
    # A fresh interpreter: here the test session has imported most submodules already.
    code = (
        "import json, keras_mtl as mtl; "
        f"print(json.dumps([m for m in {modules!r} if not hasattr(mtl, m)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_readme_quickstart_names_resolve():
    assert callable(keras_mtl.distribute.get_strategy)
    assert callable(keras_mtl.saving.load_model)
    assert callable(keras_mtl.callbacks.monitoring)
    assert callable(keras_mtl.diagnostics.suggest_groups)
    assert set(keras_mtl.__all__) >= {"callbacks", "config", "diagnostics", "distribute", "saving"}


def test_tasks_exports_tasks_not_typing_names():
    typing_names = set(dir(typing))
    assert not typing_names & set(tasks.__all__)
    assert not hasattr(tasks, "Sequence")  # would read as a task type next to Tagging
    for name in tasks.__all__:
        assert name == "TASK_TYPES" or getattr(tasks, name).__module__ == "keras_mtl.tasks"
    assert {"Binary", "Multiclass", "Multilabel", "Regression", "Tagging", "Task"} <= set(tasks.__all__)
