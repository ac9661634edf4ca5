"""The README's Python examples run as written (shortened to one epoch), from a scratch folder."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_block(heading: str) -> str:
    """The first ```python block under `## heading` in the README."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under '## {heading}'"
    return match.group(1)


@pytest.mark.slow
def test_own_table_example_runs(tmp_path, monkeypatch):
    code = readme_block("Your own table")
    code = code.replace('"examples/data/products.csv"', repr(str(ROOT / "examples" / "data" / "products.csv")))
    assert "epochs=10" in code
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code.replace("epochs=10", "epochs=1"), "README.md", "exec"), scope)
    assert (tmp_path / "saved_models" / "products" / "1" / "saved_model.pb").is_file()
    assert scope["data"].column_types["seller_id"].kind == "hashed"
    assert scope["data"].column_types["title"].kind == "text"
