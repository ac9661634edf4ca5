"""Griffe extensions for the API reference: doctests as code, grouped arguments, `__all__` as Python reads it.

keras_mtl's docstrings write their runnable examples as unindented doctests
after an `Example:` line (pytest runs them with `--doctest-modules`). Google
style would read an indented section; unindented, the `>>>` lines would
render as nested quotes and their outputs (`['a', 'b']`) as Markdown link
references. This fences each unindented doctest block (from a `>>>` line to
the next blank line) as a `pycon` code block when mkdocstrings loads the
docstrings; the sources are not changed.

`GroupedArguments` splits an argument entry that documents several
arguments at once (`batch_size, seed: ...`, a style Keras uses too), which
Google-style parsing would read as one unknown argument, into one entry per
argument with the same text.

`RuntimeExports` gives a module whose `__all__` is computed (e.g.
`keras_mtl.weighting`'s, built from its list of methods), which static
analysis reads as empty, the `__all__` an import of it has, so the reference
shows what `from module import *` and the docs' readers get.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """`text` with every unindented run of doctest lines wrapped in a ```pycon fence (tests/test_docs.py)."""
    lines = text.split("\n")
    out: list[str] = []
    i, fenced = 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (line.startswith(">>> ") or line == ">>>"):
            out.append("```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append("```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


_SECTION = re.compile(r"^(Args|Arguments|Parameters):\s*$")
_GROUP = re.compile(r"^(?P<indent> +)(?P<names>\*{0,2}\w+(?:, *\*{0,2}\w+)+):(?P<rest>.*)$")


def split_grouped_arguments(text: str) -> str:
    """`text` with every `a, b: description` entry of an Args section written once per argument (tests/test_docs.py)."""
    lines = text.split("\n")
    out: list[str] = []
    i, in_args = 0, False
    while i < len(lines):
        line = lines[i]
        if line and not line[0].isspace():
            in_args = bool(_SECTION.match(line))
        group = _GROUP.match(line) if in_args else None
        if not group:
            out.append(line)
            i += 1
            continue
        indent = group["indent"]
        more = []
        i += 1
        while i < len(lines) and lines[i].startswith(indent + " ") and lines[i].strip():
            more.append(lines[i])
            i += 1
        for name in (n.strip() for n in group["names"].split(",")):
            out.append(f"{indent}{name}:{group['rest']}")
            out.extend(more)
    return "\n".join(out)


class GroupedArguments(griffe.Extension):
    """Splits the grouped argument entries of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = split_grouped_arguments(obj.docstring.value)


class DoctestFences(griffe.Extension):
    """Fences the doctests of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)


class RuntimeExports(griffe.Extension):
    """Takes a module's `__all__` from the imported module where static analysis could not read it all."""

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        if "__all__" not in mod.members:
            return
        names = list(importlib.import_module(mod.path).__all__)
        if sorted(str(n) for n in (mod.exports or [])) != sorted(names):
            mod.exports = names
