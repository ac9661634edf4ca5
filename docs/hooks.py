"""MkDocs hook: the config reference table, generated from the schema in `keras_mtl/config.py`.

`docs/config.md` holds the marker `<!-- config-reference -->`; on build it is
replaced by one row per config key, read from the dataclasses in
`keras_mtl.config` (`Config` and everything under it): the dotted key, its
type or choices, its default, and what it means. Descriptions are the
comments on (or just above) each field in `config.py`; a field without one
takes its text from `DESCRIPTIONS` below. Where a key's values must be names
in a registry (its comment says "a name in keras_mtl.<module>", or
`REGISTRIES` below names it), the choices are that registry's `available()`,
so names a user registers show up too. `tests/test_docs.py` checks that every key has a row and
a description and that `DESCRIPTIONS` names no key the schema lacks.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import re
import tokenize
import typing
from typing import Any, Literal

MARKER = "<!-- config-reference -->"

# Descriptions of the fields that carry no comment in keras_mtl/config.py.
DESCRIPTIONS = {
    "name": "experiment name: the log, checkpoint and export folder (a letter, then letters, digits or `_`)",
    "data.train": "your own table's train file(s): a file, glob or list (with `.validation` / `.test`, one entry per split)",
    "data.validation": "your own table's validation file(s); default: held out of train by `data.split`",
    "data.test": "your own table's test file(s); default: held out of train by `data.split`",
    "data.test_fraction": "share of your own table held out for test by a `random` or `time` split",
    "data.batch_size": "global batch size (split across replicas under a strategy)",
    "data.validation_fraction": "share of the train file (or table) held out for validation",
    "data.sampling.name": "how a mixture draws its sources (see Data and mixtures, Sampling)",
    "data.sources.<name>.dataset": "the bundled dataset this source reads",
    "model.architecture": "how the tasks share: see Architectures (`single_task` takes exactly one task)",
    "model.trunk.units": "widths of the trunk's Dense layers",
    "model.trunk.dropout": "dropout after each trunk layer",
    "tasks[].name": "task name: output name, log prefix, signature key",
    "tasks[].type": "task type (see Tasks and missing labels)",
    "tasks[].label": "the label column or key; default: the task name",
    "tasks[].weight": "fixed loss weight (the `fixed` method; >= 0, not all zero)",
    "tasks[].num_classes": "classes of a multiclass task (required for it)",
    "tasks[].num_labels": "labels of a multilabel task (required for it)",
    "tasks[].num_tags": "tags of a tagging task (required for it)",
    "tasks[].units": "outputs of a regression task",
    "tasks[].tower": "widths of task-specific Dense layers under the head",
    "train.epochs": "training epochs",
    "train.optimizer": "the optimizer (`lazy_adam`: Adam with sparse updates for embedding tables)",
    "train.learning_rate": "the optimizer's learning rate",
    "train.weighting": "the loss-balancing method (see Loss weighting)",
    "train.seed": "seed of weights, splits and shuffles",
    "train.verbose": "Keras' progress output",
    "train.strategy": "the tf.distribute strategy (see Distributed training); `--strategy` overrides it",
    "train.precision": "float32, or a mixed-precision policy (heads stay float32)",
    "train.steps_per_execution": "training steps per call of the compiled step: `auto` (32 on one device unless a callback acts on batches; see `MultiTaskModel.compile`) or a number (passed to `compile`)",
    "output.logs_dir": "TensorBoard logs: `<logs_dir>/<name>/<run>/` (relative, inside the project)",
    "output.export_dir": "exports: `<export_dir>/<name>/<version>/` (relative, inside the project)",
    "output.checkpoint_dir": "best checkpoint and backups: `<checkpoint_dir>/<name>/<run>/` (relative, inside the project)",
}


# Keys checked against a registry whose config.py comment does not name it.
REGISTRIES = {"train.weighting": "keras_mtl.weighting"}
# A field commented "a name in keras_mtl.<module>" takes the names that module's `available()` lists.
_NAMED_REGISTRY = re.compile(r"\ba name in (keras_mtl(?:\.\w+)+)")


def _registry(key: str, description: str) -> typing.Callable[[], list] | None:
    """The `available()` of the registry a key's values must be in (which `register` extends), if any."""
    named = _NAMED_REGISTRY.search(description)
    path = named.group(1) if named else REGISTRIES.get(key)
    if path is None:
        return None
    return getattr(importlib.import_module(path), "available", None)


class Row(typing.NamedTuple):
    key: str
    type: str
    default: str
    description: str


def _field_comments(cls) -> dict[str, str]:
    """`{field: comment}` from the comments on a dataclass field's line or the lines just above it."""
    source, start = inspect.getsourcelines(cls)
    text = "".join(source)
    lines = text.splitlines()
    comments: dict[int, str] = {}  # 1-based line in `text` -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    tree = ast.parse(text)
    out = {}
    for node in tree.body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        parts = []
        line = node.lineno - 1
        above = []
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        parts.extend(above)
        trailing = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        parts.extend(trailing)
        if parts:
            out[node.target.id] = " ".join(parts)
    return out


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _type(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any"
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type(a) for a in inner) + " or null"
    if origin is Literal:
        return " \\| ".join(f"`{_yaml(a)}`" for a in args)
    if origin is list:
        return f"list of {_type(args[0])}" if args else "list"
    if tp is dict or origin is dict:
        return f"mapping of {_type(args[1])}" if args else "mapping"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return {int: "integer", float: "number", str: "string", bool: "true \\| false"}.get(tp, str(tp))


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return f"`{_yaml(field.default)}`"
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
        return "" if dataclasses.is_dataclass(value) else f"`{_yaml(value)}`"
    return "required"


def config_rows() -> list[Row]:
    """One `Row` per key of the run config, in schema order (nested sections, lists as `[]`)."""
    from keras_mtl import config

    rows: list[Row] = []

    def walk(cls, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        comments = _field_comments(cls)
        for field in dataclasses.fields(cls):
            key = prefix + field.name
            tp = hints[field.name]
            origin, args = typing.get_origin(tp), typing.get_args(tp)
            if dataclasses.is_dataclass(tp):
                walk(tp, key + ".")
                continue
            optional = [a for a in args if a is not type(None)] if origin is typing.Union else []
            if len(optional) == 1 and dataclasses.is_dataclass(optional[0]):
                # An optional section (`model.aitm`): null turns it off, a mapping sets its keys.
                rows.append(Row(key, "mapping or null", _default(field), comments.get(field.name, "")))
                walk(optional[0], key + ".")
                continue
            if origin is list and args and dataclasses.is_dataclass(args[0]):
                walk(args[0], key + "[].")
                continue
            if origin is dict and args and dataclasses.is_dataclass(args[1]):
                if field.name in comments:
                    rows.append(Row(key, "mapping of sources", _default(field), comments[field.name]))
                walk(args[1], key + ".<name>.")
                continue
            kind = _type(tp)
            description = comments.get(field.name) or DESCRIPTIONS.get(key, "")
            available = _registry(key, description)
            if available is not None:
                kind = " \\| ".join(f"`{name}`" for name in available())
            rows.append(Row(key, kind, _default(field), description))

    walk(config.Config, "")
    return rows


def config_table() -> str:
    """The config reference as a Markdown table."""
    out = ["| key | type or choices | default | meaning |", "|---|---|---|---|"]
    for row in config_rows():
        description = row.description.replace("|", "\\|")
        out.append(f"| `{row.key}` | {row.type} | {row.default} | {description} |")
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replaces the marker on the config reference page with the generated table."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, config_table())
    return markdown
