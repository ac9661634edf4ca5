"""The public API: what the docs name is reachable after `import keras_mtl as mtl`, and nothing private leaks.

Public modules are `keras_mtl`, the modules its `__all__` names, recursively
(e.g. `keras_mtl.data.sampling`), and `keras_mtl.cli` (the `keras-mtl`
command's module). Every other module is an implementation detail: inside a
subpackage it is absent from the package's `__all__`; directly under
`keras_mtl` (where `mtl.<tab>` lists it) its name starts with `_`.
"""

import collections.abc
import importlib
import json
import pkgutil
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

import keras_mtl
from keras_mtl import tasks

ROOT = Path(__file__).resolve().parents[1]
# Modules run as commands rather than reached as attributes: `keras-mtl` is `keras_mtl.cli:main`.
ENTRY_MODULES = ["keras_mtl.cli"]


def public_modules() -> list[types.ModuleType]:
    """`keras_mtl`, every module reachable through `__all__` from it, and the entry modules."""
    seen: dict[str, types.ModuleType] = {}
    todo = [keras_mtl] + [importlib.import_module(name) for name in ENTRY_MODULES]
    while todo:
        module = todo.pop()
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            if isinstance(value, types.ModuleType) and value.__name__.startswith("keras_mtl"):
                todo.append(value)
    return [seen[name] for name in sorted(seen)]


PUBLIC = public_modules()


def documented_names() -> list[str]:
    """Every dotted `mtl.x.y` / `keras_mtl.x.y` the README and the docs write."""
    texts = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    found = set()
    for path in texts:
        for match in re.finditer(r"\b(?:mtl|keras_mtl)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", path.read_text()):
            parts = match.group(1).lstrip(".").split(".")
            if parts[-1] in {"json", "md", "yaml", "py", "keras", "egg-info", "egg"}:
                continue  # a file name (keras_mtl.json), not an attribute
            found.add(".".join(parts))
    return sorted(found)


@pytest.mark.slow
def test_every_documented_name_is_reachable_after_import():
    names = documented_names()
    assert {"distribute.get_strategy", "callbacks.monitoring", "saving.load_model"} <= set(names)
    # A fresh interpreter: this test session has imported most submodules already.
    code = f"""
import importlib, json, keras_mtl as mtl
missing = []
for dotted in {names!r}:
    parts = dotted.split(".")
    if "keras_mtl." + parts[0] in {ENTRY_MODULES!r}:
        obj = importlib.import_module("keras_mtl." + parts[0]); parts = parts[1:]
    else:
        obj = mtl
    for part in parts:
        if not hasattr(obj, part):
            missing.append(dotted)
            break
        obj = getattr(obj, part)
print(json.dumps(missing))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_quickstart_names_resolve():
    assert callable(keras_mtl.distribute.get_strategy)
    assert callable(keras_mtl.saving.load_model)
    assert callable(keras_mtl.callbacks.monitoring)
    assert callable(keras_mtl.diagnostics.suggest_groups)
    assert set(keras_mtl.__all__) >= {"callbacks", "config", "diagnostics", "distribute", "saving", "optimizers"}


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_public_module_defines_all_of_existing_public_names(module):
    assert isinstance(getattr(module, "__all__", None), (list, tuple)), f"{module.__name__} has no __all__"
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"{module.__name__}.__all__ repeats a name"
    assert [n for n in names if not hasattr(module, n)] == []
    assert [n for n in names if n.startswith("_")] == []


def _typing_objects() -> dict[int, str]:
    objects = {}
    for source in (typing, collections.abc):
        for name in dir(source):
            if not name.startswith("_"):
                objects[id(getattr(source, name))] = f"{source.__name__}.{name}"
    return objects


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_no_public_attribute_is_a_typing_name(module):
    typing_objects = _typing_objects()
    leaked = {
        name: typing_objects[id(value)]
        for name, value in vars(module).items()
        # Modules (`import typing`, `re`) are not names that read as part of the API.
        if not name.startswith("_") and id(value) in typing_objects and not isinstance(value, types.ModuleType)
    }
    assert leaked == {}, f"{module.__name__} exposes typing's names; import them under private aliases"


@pytest.mark.parametrize("module", [m for m in PUBLIC if hasattr(m, "__path__")], ids=lambda m: m.__name__)
def test_no_function_shadows_a_submodule(module):
    shadowed = []
    for info in pkgutil.iter_modules(module.__path__):
        value = getattr(module, info.name, None)
        if value is not None and not (isinstance(value, types.ModuleType) and value.__name__ == f"{module.__name__}.{info.name}"):
            shadowed.append(info.name)
    assert shadowed == [], f"{module.__name__}: these names are both a submodule and something else"


@pytest.mark.slow
def test_top_level_modules_outside_all_are_private():
    # `mtl.<tab>` lists every submodule that was imported; those users need are in __all__.
    code = "import json, types, keras_mtl as mtl; print(json.dumps(sorted(n for n, v in vars(mtl).items() if isinstance(v, types.ModuleType))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    leaked = [n for n in modules if not n.startswith("_") and n not in keras_mtl.__all__]
    assert leaked == []
    for name in ("encoding", "heads", "masking", "events", "finite", "logs", "hparams", "model"):
        assert name not in modules and f"_{name}" not in keras_mtl.__all__


def test_private_modules_are_not_in_any_all():
    for module in PUBLIC:
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, types.ModuleType):
                assert not any(part.startswith("_") for part in value.__name__.split(".")), (module.__name__, name)


def test_tasks_exports_tasks_not_typing_names():
    assert not hasattr(tasks, "Sequence")  # would read as a task type next to Tagging
    for name in tasks.__all__:
        value = getattr(tasks, name)
        assert getattr(value, "__module__", None) == "keras_mtl.tasks", name
    assert {"Binary", "Multiclass", "Multilabel", "Regression", "Tagging", "Task"} <= set(tasks.__all__)


def test_registries_share_one_interface():
    from keras_mtl import models, optimizers, weighting
    from keras_mtl.data import datasets, sampling

    for module in (models, optimizers, tasks, weighting, datasets, sampling):
        for name in ("available", "get", "register"):
            assert callable(getattr(module, name)) and name in module.__all__, (module.__name__, name)
        names = module.available()
        assert names == sorted(names) and names, module.__name__
