"""The docs run: every ```python block of README.md and docs/**/*.md, and the generated config reference.

Each page's blocks run in order in one namespace, from a scratch folder
(the test's tmp_path, with `examples/` linked in so the pages' relative
paths work). Two substitutions keep the runs short, and are the only
changes made to the code as written:

- `epochs=N` with N >= 3 runs as `epochs=1` (examples that show 1 or 2
  epochs run as written);
- `census_income()` runs as `census_income(limit=5000)`.

A block that cannot run here is marked in the Markdown by an HTML comment
on the line before its fence, `<!-- not run: REASON -->`; the page runs
without it, and `test_block_marked_not_run` compiles it and reports it as a
skip with that reason (`-rs`). Pages that train models are in the slow
tier; the others run in the fast one.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import linecache
import os
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
# Pages whose blocks take seconds (no model is trained); every other page is slow.
FAST_PAGES = {"docs/config.md", "docs/troubleshooting.md"}
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>```+)(?P<lang>[\w-]*)")
EPOCHS = re.compile(r"\bepochs=(\d+)")


class Block(NamedTuple):
    code: str
    line: int  # the line of the opening fence, 1-based
    not_run: str | None  # the reason, for a block marked <!-- not run: ... -->


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, in order, with their not-run reasons."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        ticks, start = opening["ticks"], i
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if opening["lang"] != "python":
            continue
        previous = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(previous)
        blocks.append(Block("\n".join(body) + "\n", start + 1, marker["reason"] if marker else None))
    return blocks


def shortened(code: str) -> str:
    """The code as the tests run it: the module docstring's two substitutions."""
    code = EPOCHS.sub(lambda m: "epochs=1" if int(m[1]) >= 3 else m[0], code)
    return code.replace("census_income()", "census_income(limit=5000)")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _check_readme(tmp_path: Path, scope: dict) -> None:
    # The "Your own table" example: exported, ids hashed, titles read as text.
    assert (tmp_path / "saved_models" / "products" / "1" / "saved_model.pb").is_file()
    assert scope["data"].column_types["seller_id"].kind == "hashed"
    assert scope["data"].column_types["title"].kind == "text"
    assert (tmp_path / "saved_models" / "census" / "1" / "saved_model.pb").is_file()


def _check_serving(tmp_path: Path, scope: dict) -> None:
    assert (tmp_path / "saved_models" / "census" / "2" / "saved_model.pb").is_file()
    assert "stable" in (tmp_path / "saved_models" / "models.config").read_text()


# What a page's run must leave behind, beyond its blocks' own asserts.
CHECKS = {"README.md": _check_readme, "docs/serving.md": _check_serving}

RUNNABLE = [p for p in PAGES if python_blocks(p)]


def _param(path: Path):
    name = _name(path)
    marks = [] if name in FAST_PAGES else [pytest.mark.slow]
    return pytest.param(path, id=name, marks=marks)


@pytest.mark.parametrize("page", [_param(p) for p in RUNNABLE])
def test_page_code_runs(page, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    scope = {"__name__": "__docs__"}
    for block in python_blocks(page):
        where = f"{_name(page)}:{block.line}"
        if block.not_run is not None:
            continue  # reported by test_block_marked_not_run
        code = shortened(block.code)
        linecache.cache[where] = (len(code), None, code.splitlines(True), where)  # tracebacks show the code
        exec(compile(code, where, "exec"), scope)
    check = CHECKS.get(_name(page))
    if check:
        check(tmp_path, scope)


NOT_RUN_BLOCKS = [(p, b) for p in PAGES for b in python_blocks(p) if b.not_run is not None]


@pytest.mark.parametrize(
    "page, block", [pytest.param(p, b, id=f"{_name(p)}:{b.line}") for p, b in NOT_RUN_BLOCKS]
)
def test_block_marked_not_run(page, block):
    """A block its page marks `<!-- not run: REASON -->`: reported as a skip with the reason, after a syntax check."""
    compile(block.code, f"{_name(page)}:{block.line}", "exec")
    pytest.skip(f"{_name(page)}:{block.line} not run: {block.not_run}")


def test_blocks_are_found_and_not_run_markers_say_why():
    blocks = {_name(p): python_blocks(p) for p in PAGES}
    assert len(blocks["README.md"]) == 2  # Quickstart, Your own table
    assert sum(len(b) for b in blocks.values()) >= 30
    marked = [(page, b.line, b.not_run) for page, bs in blocks.items() for b in bs if b.not_run is not None]
    assert all(reason for _, _, reason in marked), marked
    assert len(marked) <= 3, f"keep blocks that cannot run few: {marked}"
    # A marker must sit right before a python fence, or it marks nothing.
    for page in PAGES:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if NOT_RUN.match(line.strip()):
                following = next(l for l in lines[i + 1:] if l.strip())
                assert following.startswith("```python"), f"{_name(page)}:{i + 1}: marker before {following!r}"


def test_shortening_changes_only_long_fits():
    code = 'data = mtl.data.census_income()\nmodel.fit(x, epochs=10)\nAnnealed(epochs=2)\n'
    assert shortened(code) == (
        'data = mtl.data.census_income(limit=5000)\nmodel.fit(x, epochs=1)\nAnnealed(epochs=2)\n'
    )


def test_readme_is_short_and_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    assert lines[:5] == [
        "# keras_mtl",
        "",
        "```bash",
        "bash scripts/main.sh   # installs, trains 2 tasks on UCI census-income, logs to TensorBoard, "
        "exports to saved_models/census/<version>/, verifies the export",
        "bash scripts/test.sh   # installs, runs the fast test tier (`bash scripts/test.sh -m slow` runs "
        "the end-to-end tier; CI runs both)",
    ]


def test_every_public_module_has_an_api_page():
    import types

    import keras_mtl

    nav = (ROOT / "mkdocs.yml").read_text()
    modules = [n for n in keras_mtl.__all__ if isinstance(getattr(keras_mtl, n), types.ModuleType)]
    assert {"tasks", "models", "weighting", "data", "export", "callbacks"} <= set(modules)
    for name in modules:
        page = ROOT / "docs" / "api" / f"{name}.md"
        assert page.is_file() and f"::: keras_mtl.{name}\n" in page.read_text(), f"no API page for {name}"
        assert f"api/{name}.md" in nav, f"api/{name}.md is not in mkdocs.yml's nav"


# --------------------------------------------------------------- config reference


def _hooks():
    spec = importlib.util.spec_from_file_location("keras_mtl_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _schema_keys(cls, prefix: str = "") -> list[str]:
    """Every leaf key of the run config, walked here independently of docs/hooks.py."""
    keys = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            keys += _schema_keys(tp, f"{prefix}{field.name}.")
        elif typing.get_origin(tp) is list and args and dataclasses.is_dataclass(args[0]):
            keys += _schema_keys(args[0], f"{prefix}{field.name}[].")
        elif typing.get_origin(tp) is dict and args and dataclasses.is_dataclass(args[1]):
            keys += _schema_keys(args[1], f"{prefix}{field.name}.<name>.")
        else:
            keys.append(prefix + field.name)
    return keys


def test_config_reference_covers_every_key():
    from keras_mtl import config

    hooks = _hooks()
    table = hooks.config_table()
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines()[2:]}
    keys = _schema_keys(config.Config)
    assert {"name", "data.batch_size", "data.sources.<name>.dataset", "tasks[].num_classes",
            "train.weighting", "output.backup_every"} <= set(keys)
    missing = [k for k in keys if k not in rows]
    assert not missing, f"keys without a row in the config reference: {missing}"
    for key in keys:
        meaning = rows[key].rstrip(" |").rsplit("|", 1)[1].strip()
        assert meaning, f"config key {key} has no description: comment it in config.py or add it to DESCRIPTIONS"
    assert set(hooks.DESCRIPTIONS) <= set(keys), "DESCRIPTIONS names keys the schema lacks"
    assert set(hooks.REGISTRIES) <= set(keys), "REGISTRIES names keys the schema lacks"
    # Defaults are the dataclasses' own; choices come from the schema or from the registries.
    assert "| `train.epochs` | integer | `5` |" in table
    from keras_mtl import models, weighting

    assert all(f"`{name}`" in rows["train.weighting"] for name in weighting.available())
    assert all(f"`{name}`" in rows["model.architecture"] for name in models.available())
    for key, row in rows.items():
        named = re.search(r"a name in (keras_mtl(?:\.\w+)+)", row)
        if named:
            registry = importlib.import_module(named.group(1))
            assert all(f"`{name}`" in row for name in registry.available()), row


def test_config_page_gets_the_table():
    hooks = _hooks()
    page = (ROOT / "docs" / "config.md").read_text()
    assert page.count(hooks.MARKER) == 1
    built = hooks.on_page_markdown(page, None, None, None)
    assert hooks.MARKER not in built and hooks.config_table() in built


# ----------------------------------------------------------------------- the site


def _griffe_extensions():
    pytest.importorskip("griffe", reason="the docs extra is not installed: pip install -e '.[docs]'")
    spec = importlib.util.spec_from_file_location("keras_mtl_griffe_extensions", ROOT / "docs" / "griffe_extensions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docstring_doctests_render_as_code():
    fence = _griffe_extensions().fence_doctests
    text = "Example:\n>>> f(1)\n2\n\nMore.\n    >>> indented(0)  # a Google Examples section: left to griffe"
    assert fence(text) == (
        "Example:\n```pycon\n>>> f(1)\n2\n```\n\nMore.\n    >>> indented(0)  # a Google Examples section: left to griffe"
    )
    already = "```python\n>>> f(1)\n```"
    assert fence(already) == already


def test_grouped_arguments_are_split():
    split = _griffe_extensions().split_grouped_arguments
    text = "Intro, a, b: not args.\n\nArgs:\n    a, b: the sizes,\n        in rows.\n    c: other.\n\nReturns:\n    x, y: a pair."
    assert split(text) == (
        "Intro, a, b: not args.\n\nArgs:\n    a: the sizes,\n        in rows.\n    b: the sizes,\n        in rows.\n"
        "    c: other.\n\nReturns:\n    x, y: a pair."
    )


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    """`mkdocs build --strict` (what scripts/docs.sh runs): no warnings, every page and API page built."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (site / "config" / "index.html").read_text().count("<code>train.") >= 10
    api = (site / "api" / "weighting" / "index.html").read_text()
    assert 'id="keras_mtl.weighting.PCGrad"' in api and 'id="keras_mtl.weighting.get"' in api
