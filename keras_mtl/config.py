"""Run configuration for the `keras-mtl` CLI: YAML in, validated dataclasses out.

Every key is checked: an unknown key, a wrong type or a bad value raises
`ConfigError` naming the key (e.g. `train.epochs`), with a suggestion for
misspelt keys. YAML is read with `yaml.safe_load` only.

The names a config chooses from are the registries' (`choices()` lists
them): `data.dataset` from `keras_mtl.data.datasets`, `data.sampling.name`
from `keras_mtl.data.sampling`, `model.architecture` from
`keras_mtl.models`, `tasks[].type` from `keras_mtl.tasks`,
`train.optimizer` from `keras_mtl.optimizers` and `train.weighting` from
`keras_mtl.weighting`; what you `register` there is accepted here. Which
`model.*` and `data.sampling.*` keys apply is read off the factory's and
sampler's arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import typing
from pathlib import Path, PurePath
from typing import Any as _Any
from typing import Callable as _Callable
from typing import Literal as _Literal
from typing import Optional as _Optional

import yaml

from keras_mtl._pretrained import POOLINGS as _POOLINGS
from keras_mtl._pretrained import TRAIN_MODES as _TRAIN_MODES
from keras_mtl.data.files import FORMATS as _FORMATS
from keras_mtl.distribute import STRATEGIES as _STRATEGIES


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def choices() -> dict[str, list]:
    """`{key: names}` for every key whose names come from a registry (what `register` added included).

    Example:
    >>> choices()["tasks[].type"]
    ['binary', 'multiclass', 'multilabel', 'ranking', 'regression', 'tagging', 'zero_inflated_lognormal']
    """
    from keras_mtl import models, optimizers, tasks, weighting
    from keras_mtl.data import datasets, sampling

    return {
        "data.dataset": datasets.available(),
        "data.sources.<name>.dataset": datasets.available(),
        "data.sampling.name": sampling.available(),
        "model.architecture": models.available(),
        "tasks[].type": tasks.available(),
        "train.optimizer": optimizers.available(),
        "train.weighting": weighting.available(),
    }


def _one_of(value: str, names: list, path: str) -> None:
    if value not in names:
        hint = ""
        if path.endswith("dataset") and isinstance(value, str) and ("/" in value or "." in value):
            hint = f" For your own files use {path[: -len('dataset')]}path: {value} (CSV, Parquet, JSON lines, TFRecord)."
        raise ConfigError(f"{path} must be one of {names}, got {value!r}.{hint}")


def _dataset_names() -> list:
    from keras_mtl.data import datasets

    return datasets.available()


def _takes(factory: _Callable, options) -> tuple:
    """Those of `options` (config keys) that `factory` takes as keyword arguments, in `options`' order."""
    params = inspect.signature(factory).parameters
    return tuple(k for k in options if k in params)


@dataclasses.dataclass
class SourceConfig:
    """One source of a mixture: a bundled dataset and the labels (tasks) it gives."""

    dataset: str  # a name in keras_mtl.data.datasets
    tasks: _Optional[list[str]] = None  # label keys of the dataset this source labels; None: all of them
    limit: _Optional[int] = None  # rows read from each file; None: data.limit

    def check(self, path):
        _one_of(self.dataset, _dataset_names(), f"{path}.dataset")
        if self.tasks is not None and (not self.tasks or len(set(self.tasks)) != len(self.tasks)):
            raise ConfigError(f"{path}.tasks must be a non-empty list of distinct label names, got {self.tasks}.")
        if self.limit is not None:
            _positive(self, path, "limit")


@dataclasses.dataclass
class SamplingConfig:
    """How a mixture draws its sources: `{name: temperature, temperature: 2}`."""

    name: str = "proportional"  # a name in keras_mtl.data.sampling
    temperature: _Optional[float] = None  # temperature: p ~ n^(1/T) (default 2)
    final_alpha: _Optional[float] = None  # annealed: the exponent in the last epoch (default 0.2)
    weights: _Optional[dict[str, float]] = None  # weights: {source: weight}, every source named

    # The sampler options; each sampler takes those its constructor names.
    OPTIONS = ("temperature", "final_alpha", "weights")

    def takes(self) -> tuple:
        """The option keys the chosen sampler's constructor takes (`epochs` is the run's).

        Example:
        >>> SamplingConfig("annealed").takes()
        ('final_alpha',)
        """
        from keras_mtl.data import sampling

        return _takes(sampling._SAMPLERS.get(self.name), self.OPTIONS)

    def check(self, path):
        from keras_mtl.data import sampling

        _one_of(self.name, sampling.available(), f"{path}.name")
        takes = self.takes()
        for key in self.OPTIONS:
            if getattr(self, key) is not None and key not in takes:
                raise ConfigError(
                    f"{path}.{key} does not apply to sampling {self.name!r}, which takes "
                    f"{', '.join(f'{path}.{k}' for k in takes) or 'no options'}."
                )
        if "weights" in takes and self.weights is None:
            raise ConfigError(f"{path}.weights is required for sampling 'weights': {{source: weight, ...}}.")
        try:
            self.build(epochs=1)
        except ValueError as e:
            raise ConfigError(f"{path}: {e}") from None

    def build(self, epochs: int):
        """The `keras_mtl.data.sampling` object; `annealed` spans `epochs`.

        Example:
        >>> SamplingConfig("temperature", temperature=3).build(epochs=5)
        Temperature(temperature=3.0)
        """
        from keras_mtl.data import sampling

        options = {k: getattr(self, k) for k in self.takes() if getattr(self, k) is not None}
        if "epochs" in inspect.signature(sampling._SAMPLERS.get(self.name)).parameters:
            options["epochs"] = epochs
        return sampling.get(self.name, **options)


@dataclasses.dataclass
class DataConfig:
    dataset: _Optional[str] = None  # a name in keras_mtl.data.datasets; census_income unless sources or files are given
    # A user's table: one file/glob/list split by `split`, or one entry per split.
    path: _Optional[list[str]] = None
    train: _Optional[list[str]] = None
    validation: _Optional[list[str]] = None
    test: _Optional[list[str]] = None
    format: _Optional[_Literal[_FORMATS]] = None  # default: from the extension
    features: dict = dataclasses.field(default_factory=dict)  # {column: kind | {kind, options} | drop}
    split: _Any = "random"  # random | {column: COLUMN} | {time: COLUMN}
    test_fraction: float = 0.1
    stream: bool = False  # read CSV/TFRecord batch by batch (tables larger than memory)
    batch_size: int = 1024
    validation_fraction: float = 0.1
    limit: _Optional[int] = None  # rows read from each file; None reads all
    # A mixture instead of one dataset: {name: {dataset, tasks, limit}}.
    sources: dict[str, SourceConfig] = dataclasses.field(default_factory=dict)
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)
    examples_per_epoch: _Optional[int] = None  # mixtures: default the sum of the sources' sizes
    # {task: fraction}: keep that fraction of the task's training labels, the rest missing (label-scarce runs).
    keep_labels: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.sources and self.dataset is None and not self.files():
            self.dataset = "census_income"

    def files(self) -> dict:
        """`{split: [paths]}` of a user's table (empty for bundled data).

        Example:
        >>> DataConfig(path=["t.csv"]).files()
        {'train': ['t.csv']}
        """
        if self.path:
            return {"train": self.path}
        return {k: getattr(self, k) for k in ("train", "validation", "test") if getattr(self, k)}

    def check(self, path):
        if self.dataset is not None:
            _one_of(self.dataset, _dataset_names(), f"{path}.dataset")
        _positive(self, path, "batch_size")
        for key in ("validation_fraction", "test_fraction"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"{path}.{key} must be in (0, 1), got {getattr(self, key)}.")
        if self.limit is not None:
            _positive(self, path, "limit")
        for task, fraction in self.keep_labels.items():
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
                raise ConfigError(f"{path}.keep_labels.{task} must be a fraction in (0, 1], got {fraction!r}.")
        if self.keep_labels and (self.sources or self.stream):
            raise ConfigError(f"{path}.keep_labels needs one table in memory (not data.sources, not data.stream).")
        files = self.files()
        if self.path and any(getattr(self, k) for k in ("train", "validation", "test")):
            raise ConfigError(
                f"{path}.path and {path}.train/validation/test exclude each other: one table to split, "
                "or one file (or glob) per split."
            )
        if files and "train" not in files:
            raise ConfigError(f"{path}.train is required when {path}.validation or {path}.test is given.")
        if files and (self.dataset is not None or self.sources):
            raise ConfigError(
                f"{path}.dataset, {path}.sources and {path}.path (or train/validation/test) exclude each "
                "other: train on a bundled dataset, a mixture, or your own files."
            )
        if not files:
            for key, unset in (("features", {}), ("split", "random"), ("format", None), ("stream", False)):
                if getattr(self, key) != unset:
                    raise ConfigError(f"{path}.{key} applies to your own files: set {path}.path too.")
        if self.split != "random" and not (
            isinstance(self.split, dict) and len(self.split) == 1 and set(self.split) <= {"column", "time"}
            and isinstance(next(iter(self.split.values())), str)
        ):
            raise ConfigError(
                f"{path}.split must be random, {{column: COLUMN}} or {{time: COLUMN}}, got {self.split!r}."
            )
        if not self.sources:
            for key, unset in (("sampling", SamplingConfig()), ("examples_per_epoch", None)):
                if getattr(self, key) != unset:
                    raise ConfigError(f"{path}.{key} applies to a mixture: set {path}.sources too.")
            return
        if self.dataset is not None:
            raise ConfigError(
                f"{path}.dataset and {path}.sources exclude each other: a mixture names each "
                f"source's dataset in {path}.sources.<name>.dataset."
            )
        if self.examples_per_epoch is not None:
            _positive(self, path, "examples_per_epoch")
        weights = self.sampling.weights
        if weights is not None and sorted(weights) != sorted(self.sources):
            raise ConfigError(
                f"{path}.sampling.weights must name exactly the sources {sorted(self.sources)}, "
                f"got {sorted(weights)}."
            )


@dataclasses.dataclass
class TrunkConfig:
    """The shared trunk under the heads: the one that fits the data, or a pretrained text encoder."""

    # default: the trunk that fits the data (tabular, text, image or MLP); pretrained: a KerasHub text encoder (keras_mtl.trunks.pretrained)
    type: _Literal["default", "pretrained"] = "default"
    units: _Optional[list[int]] = None  # type default: widths of the trunk's Dense layers (unset: [128, 64])
    dropout: _Optional[float] = None  # type default: dropout after each trunk layer (unset: 0)
    preset: _Optional[str] = None  # type pretrained (required): a KerasHub preset directory (save_to_preset) or preset name
    preprocessor: _Optional[str] = None  # type pretrained: the tokenizer's preset directory or name; unset: preset
    # type pretrained: what of the encoder trains; unset: frozen. task_lora (each task its own adapters) needs shared_bottom
    train: _Optional[_Literal[_TRAIN_MODES]] = None
    lora_rank: _Optional[int] = None  # type pretrained, train lora or task_lora: the adapters' rank (unset: 4)
    pooling: _Optional[_Literal[_POOLINGS]] = None  # type pretrained: cls (unset: the backbone's pooled output) or mean
    # type pretrained: word pieces per text, [CLS] and [SEP] included; unset: the preprocessor's (KerasHub: 512)
    sequence_length: _Optional[int] = None

    # The keys each type takes; a set key of another type is an error.
    KEYS = {
        "default": ("units", "dropout"),
        "pretrained": ("preset", "preprocessor", "train", "lora_rank", "pooling", "sequence_length"),
    }
    # What the default trunk's unset keys mean (filled in, so saved configs show them).
    DEFAULTS = {"units": (128, 64), "dropout": 0.0}
    # Why a key of the default trunk has no meaning for a pretrained one.
    _NOT_PRETRAINED = (
        " The heads read the encoder's pooled output directly; Dense layers of a task's own go in "
        "tasks[].tower."
    )

    def __post_init__(self):
        if self.type == "default":
            for key, value in self.DEFAULTS.items():
                if getattr(self, key) is None:
                    setattr(self, key, list(value) if isinstance(value, tuple) else value)

    def check(self, path):
        takes = self.KEYS[self.type]
        for key in [k for keys in self.KEYS.values() for k in keys]:
            if getattr(self, key) is not None and key not in takes:
                hint = (
                    f"{self._NOT_PRETRAINED} Remove it (or --set {path}.{key}=null)."
                    if self.type == "pretrained"
                    else f" Set {path}.type: pretrained for a pretrained encoder."
                )
                raise ConfigError(
                    f"{path}.{key} does not apply to trunk type {self.type!r}, which takes "
                    f"{', '.join(f'{path}.{k}' for k in takes)}.{hint}"
                )
        if self.type == "default":
            if not self.units or any(u < 1 for u in self.units):
                raise ConfigError(f"{path}.units must be a non-empty list of positive integers, got {self.units}.")
            if not 0.0 <= self.dropout < 1.0:
                raise ConfigError(f"{path}.dropout must be in [0, 1), got {self.dropout}.")
            return
        self._check_pretrained(path)

    def _check_pretrained(self, path):
        from keras_mtl import _pretrained

        if not self.preset:
            raise ConfigError(
                f"{path}.preset is required for trunk type 'pretrained': a KerasHub preset directory "
                "(written by backbone.save_to_preset(dir) and tokenizer.save_to_preset(dir)) or a preset name."
            )
        if self.lora_rank is not None and self.train not in ("lora", "task_lora"):
            raise ConfigError(
                f"{path}.lora_rank applies to {path}.train lora or task_lora, not {self.train or 'frozen'}."
            )
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ConfigError(f"{path}.lora_rank must be >= 1, got {self.lora_rank}.")
        if self.sequence_length is not None and self.sequence_length < 2:
            raise ConfigError(f"{path}.sequence_length must be >= 2 ([CLS] and [SEP]), got {self.sequence_length}.")
        try:
            # Local directories are checked now, not when the model is built
            # (after the data is read); preset names are only known to a hub.
            for key, what in (("preset", "backbone"), ("preprocessor", "preprocessor")):
                value = getattr(self, key)
                if value is not None and _pretrained.looks_like_path(value):
                    try:
                        _pretrained.check_preset_dir(value, what, backbone=what == "backbone")
                    except ValueError as e:
                        raise ConfigError(f"{path}.{key}: {e}") from None
            self.pretrained()  # the trunk's own checks of the options
        except ImportError as e:
            raise ConfigError(f"{path}.type: pretrained: {e}") from None
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"{path}: {e}") from None

    def pretrained(self):
        """`keras_mtl.trunks.pretrained` with this entry's set keys (type pretrained); the preset loads when the model is built.

        Needs KerasHub, so the example is not a doctest (`docs/cli.md` runs one):
        ```python
        trunk = TrunkConfig(type="pretrained", preset="path/to/preset", train="lora").pretrained()
        model = keras_mtl.models.shared_bottom(keras.Input((), dtype="string"), tasks, trunk=trunk)
        ```
        """
        from keras_mtl import trunks

        return trunks.pretrained(self.preset, **self.pretrained_kwargs())

    def pretrained_kwargs(self) -> dict:
        """The keyword arguments `trunks.pretrained(preset, ...)` gets: the set pretrained keys but `preset`.

        Example:
        >>> TrunkConfig(type="pretrained", preset="tiny", train="lora", lora_rank=8).pretrained_kwargs()
        {'train': 'lora', 'lora_rank': 8}
        """
        return {
            k: getattr(self, k) for k in self.KEYS["pretrained"] if k != "preset" and getattr(self, k) is not None
        }


@dataclasses.dataclass
class AitmConfig:
    """`model.aitm`: AITM towers over `model.architecture` (`keras_mtl.models.aitm`); tasks in funnel order.

    Example:
    >>> from_dict(AitmConfig, {"tower_units": [32], "calibrator": 0.6}).kwargs()
    {'tower_units': [32], 'calibrator': 0.6}
    """

    tower_units: list[int] = dataclasses.field(default_factory=lambda: [64, 32])  # widths of each task's tower
    calibrator: float = 0.0  # weight of the penalty on p(task) > p(previous task)

    def check(self, path):
        if not self.tower_units or any(u < 1 for u in self.tower_units):
            raise ConfigError(f"{path}.tower_units must be a non-empty list of positive integers, got {self.tower_units}.")
        if not 0.0 <= self.calibrator < float("inf"):
            raise ConfigError(f"{path}.calibrator must be a finite number >= 0, got {self.calibrator}.")

    def kwargs(self) -> dict:
        """The arguments of `keras_mtl.models.aitm` this entry sets."""
        return {"tower_units": list(self.tower_units), "calibrator": self.calibrator}


@dataclasses.dataclass
class ModelConfig:
    architecture: str = "shared_bottom"  # a name in keras_mtl.models
    trunk: TrunkConfig = dataclasses.field(default_factory=TrunkConfig)
    # AITM's towers and information transfer between the tasks, in the order
    # of `tasks`, over the architecture's per-task inputs.
    aitm: _Optional[AitmConfig] = None
    num_experts: _Optional[int] = None  # mmoe: experts; cgc/ple: shared experts (per level)
    num_task_experts: _Optional[int] = None  # cgc/ple: experts per task (per level)
    expert_units: _Optional[list[int]] = None  # mmoe/cgc/ple: widths of each expert
    num_levels: _Optional[int] = None  # ple: extraction levels
    column_units: _Optional[list[int]] = None  # cross_stitch/soft_sharing: widths of each column
    penalty: _Optional[float] = None  # soft_sharing: lambda
    # Start from a trained model: a .keras file or a run's checkpoint folder
    # (checkpoints/<name>/<run>, its best.keras). Its architecture and trunk
    # replace model.architecture/trunk; tasks of this config that it lacks are
    # added with keras_mtl.models.extend.
    init_from: _Optional[str] = None
    freeze: str = "trunk"  # with init_from and new tasks: trunk (old layers frozen) or none
    keep: str = "none"  # with freeze: none: distill (keep old tasks by distilling the old model) or none

    # The hyper-parameters an architecture takes from `model.*`: those its
    # factory has as arguments. Unset (null) keys keep the factory's default;
    # a key the chosen architecture does not take is an error.
    HYPERPARAMETERS = ("num_levels", "num_experts", "num_task_experts", "expert_units", "column_units", "penalty")

    def takes(self) -> tuple:
        """The `model.*` keys the chosen architecture's factory takes.

        Example:
        >>> ModelConfig(architecture="cgc").takes()
        ('num_experts', 'num_task_experts', 'expert_units')
        """
        from keras_mtl import models

        return _takes(models.get(self.architecture), self.HYPERPARAMETERS)

    def check(self, path):
        from keras_mtl import models

        _one_of(self.architecture, models.available(), f"{path}.architecture")
        takes = self.takes()
        for key in sorted(self.HYPERPARAMETERS):
            if getattr(self, key) is not None and key not in takes:
                raise ConfigError(
                    f"{path}.{key} does not apply to architecture {self.architecture!r}, which "
                    f"takes {', '.join(f'{path}.{k}' for k in takes) or 'no hyper-parameters'}."
                )
        for key, minimum in (("num_experts", 1), ("num_task_experts", 0), ("num_levels", 1)):
            if getattr(self, key) is not None and getattr(self, key) < minimum:
                raise ConfigError(f"{path}.{key} must be >= {minimum}, got {getattr(self, key)}.")
        for key in ("expert_units", "column_units"):
            units = getattr(self, key)
            if units is not None and (not units or any(u < 1 for u in units)):
                raise ConfigError(f"{path}.{key} must be a non-empty list of positive integers, got {units}.")
        if self.penalty is not None and not 0.0 <= self.penalty < float("inf"):
            raise ConfigError(f"{path}.penalty must be a finite number >= 0, got {self.penalty}.")
        _one_of(self.freeze, ["trunk", "none"], f"{path}.freeze")
        _one_of(self.keep, ["none", "distill"], f"{path}.keep")
        if self.init_from is None and (self.freeze, self.keep) != ("trunk", "none"):
            raise ConfigError(f"{path}.freeze and {path}.keep apply to a model started from another: set {path}.init_from.")
        if self.trunk.type == "pretrained" and self.init_from is not None:
            raise ConfigError(
                f"{path}.trunk.type: pretrained builds a new trunk, but {path}.init_from starts from a trained "
                "model whose trunk replaces it; set one of them."
            )
        if self.trunk.train == "task_lora" and self.architecture != "shared_bottom":
            raise ConfigError(
                f"{path}.trunk.train: task_lora (one set of LoRA adapters per task) works with "
                f"{path}.architecture shared_bottom only, got {self.architecture!r}; use train: lora here."
            )
        if self.aitm is not None and self.architecture == "single_task":
            raise ConfigError(
                f"{path}.aitm transfers information between tasks; {path}.architecture single_task has one task."
            )
        if self.aitm is not None and self.init_from is not None:
            raise ConfigError(
                f"{path}.aitm builds new towers, but {path}.init_from starts from a trained model whose "
                "architecture replaces them; set one of them."
            )
        if self.keep == "distill" and self.freeze != "none":
            raise ConfigError(
                f"{path}.keep: distill keeps the old tasks while the trunk trains; with {path}.freeze: trunk "
                "their outputs cannot change anyway. Set freeze: none."
            )

    def hyperparameters(self) -> dict:
        """The set keys the chosen architecture takes, as factory keyword arguments.

        Example:
        >>> ModelConfig(architecture="mmoe", num_experts=4).hyperparameters()
        {'num_experts': 4}
        """
        return {k: getattr(self, k) for k in self.takes() if getattr(self, k) is not None}


# The keys that size a task's output; each task type takes its own.
_SIZE_KEYS = ("num_classes", "num_labels", "num_tags", "units")


@dataclasses.dataclass
class TaskConfig:
    name: str
    type: str  # a name in keras_mtl.tasks
    label: _Optional[str] = None
    weight: float = 1.0
    num_classes: _Optional[int] = None
    num_labels: _Optional[int] = None
    num_tags: _Optional[int] = None
    units: _Optional[int] = None
    tower: list[int] = dataclasses.field(default_factory=list)
    # Regression only: train on standardised targets, predict in the label's units
    # (see keras_mtl.tasks.Regression).
    normalize: bool = True
    # A conditional task: the Binary task it is given (its loss and metrics count the
    # examples where that task is positive); entire_space trains it as ESMM does.
    given: _Optional[str] = None
    entire_space: bool = False
    inconsistent: _Literal["warn", "raise"] = "warn"
    # A Binary task whose probability this one's should not exceed, and the penalty's weight.
    at_most: _Optional[str] = None
    at_most_weight: float = 1.0
    # Ranking only: the label column of each example's group (query, user), the
    # loss (pairwise or listwise) and the cut-off k of the logged NDCG.
    group: _Optional[str] = None
    loss: _Optional[str] = None
    ndcg_at: _Optional[int] = None

    def check(self, path):
        from keras_mtl import tasks

        _one_of(self.type, tasks.available(), f"{path}.type")
        try:
            tasks.validate_name(self.name)
        except ValueError as e:
            raise ConfigError(f"{path}.name: {e}") from None
        if self.weight < 0:
            raise ConfigError(f"{path}.weight must be >= 0, got {self.weight}.")
        if not self.normalize and self.type != "regression":
            raise ConfigError(f"{path}.normalize applies to regression tasks only; {self.name!r} is {self.type}.")
        if self.type != "ranking":
            for key in ("group", "loss", "ndcg_at"):
                if getattr(self, key) is not None:
                    raise ConfigError(f"{path}.{key} applies to ranking tasks only; {self.name!r} is {self.type}.")
        needed = {"multiclass": "num_classes", "multilabel": "num_labels", "tagging": "num_tags", "ranking": "group"}
        if self.type in needed and getattr(self, needed[self.type]) is None:
            raise ConfigError(f"{path}.{needed[self.type]} is required for a {self.type} task.")
        try:
            self.build()  # the task's own checks (num_classes >= 2, a known loss, ...)
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"{path}: {e}") from None

    def build(self):
        """The `keras_mtl.tasks.Task` this entry describes."""
        from keras_mtl import tasks

        kwargs = {"label": self.label, "weight": self.weight, "tower": self.tower, "given": self.given,
                  "entire_space": self.entire_space, "inconsistent": self.inconsistent,
                  "at_most": self.at_most, "at_most_weight": self.at_most_weight}
        sizes = [k for k in _SIZE_KEYS if getattr(self, k) is not None]
        # A size key of another task type (num_classes on a binary task): named, not a TypeError.
        takes = _takes(tasks._TASK_TYPES.get(self.type), _SIZE_KEYS)
        for key in sizes:
            if key not in takes:
                raise ConfigError(
                    f"Task {self.name!r}: {key} does not apply to a {self.type} task"
                    + (f" (it takes {', '.join(takes)})." if takes else "; remove it.")
                )
            kwargs[key] = getattr(self, key)
        if self.type == "regression":
            kwargs["normalize"] = self.normalize
        if self.type == "ranking":
            kwargs = {k: v for k, v in kwargs.items() if k not in ("given", "entire_space", "at_most")}
            kwargs.update(group=self.group, ndcg_at=self.ndcg_at, **({"loss": self.loss} if self.loss else {}))
        try:
            return tasks.get(self.type, self.name, **kwargs)
        except TypeError as e:
            raise ConfigError(f"Task {self.name!r} ({self.type}): {e}") from None


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 5
    optimizer: str = "adam"  # a name in keras_mtl.optimizers
    learning_rate: float = 1e-3
    weighting: str = "fixed"
    weighting_args: dict = dataclasses.field(default_factory=dict)  # e.g. {mode: representation}
    seed: int = 0
    verbose: _Literal["auto", 0, 1, 2] = "auto"
    strategy: _Literal[_STRATEGIES] = "auto"
    precision: _Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    # "once": encode features once before training (MultiTaskData.encoded);
    # "every_step": run the model's preprocessing inside every training step.
    preprocess: _Literal["once", "every_step"] = "once"
    jit_compile: _Literal["auto", True, False] = "auto"  # XLA; see MultiTaskModel.compile
    # "auto" or an integer >= 1; see MultiTaskModel.compile.
    steps_per_execution: _Any = "auto"

    def check(self, path):
        from keras_mtl import optimizers

        _one_of(self.optimizer, optimizers.available(), f"{path}.optimizer")
        _positive(self, path, "epochs")
        spe = self.steps_per_execution
        if spe != "auto" and (isinstance(spe, bool) or not isinstance(spe, int) or spe < 1):
            raise ConfigError(f"{path}.steps_per_execution must be 'auto' or an integer >= 1, got {spe!r}.")
        if not self.learning_rate > 0:
            raise ConfigError(f"{path}.learning_rate must be > 0, got {self.learning_rate}.")
        from keras_mtl import weighting

        if self.weighting not in weighting.available():
            raise ConfigError(
                f"{path}.weighting: unknown method {self.weighting!r}; available: {weighting.available()}."
            )
        try:
            weighting.get(self.weighting, **self.weighting_args)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{path}.weighting_args for {self.weighting!r}: {e}") from None


@dataclasses.dataclass
class MonitorConfig:
    conflict_every: int = 100  # steps between gradient-conflict probes; 0 turns them off
    affinity_every: int = 200  # steps between task-affinity probes; 0 turns them off

    def check(self, path):
        for key in ("conflict_every", "affinity_every"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{path}.{key} must be >= 0, got {getattr(self, key)}.")


@dataclasses.dataclass
class OutputConfig:
    logs_dir: str = "logs"
    export_dir: str = "saved_models"
    checkpoint_dir: str = "checkpoints"
    run: _Optional[str] = None  # run name; default: a timestamp
    backup_every: _Optional[int] = None  # BackupAndRestore every N steps; default: every epoch

    def check(self, path):
        if self.backup_every is not None:
            _positive(self, path, "backup_every")
        for key in ("logs_dir", "export_dir", "checkpoint_dir"):
            _inside_project(getattr(self, key), f"{path}.{key}")
        if self.run is not None and not _RUN_NAME.match(self.run):
            raise ConfigError(
                f"{path}.run: invalid run name {self.run!r}; use letters, digits, '_' or '-' "
                "(up to 64, starting with a letter or digit): it becomes a folder name."
            )


# Run names become folder names under logs/ and checkpoints/ (timestamps by default).
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _inside_project(value: str, key: str) -> None:
    """Output folders are written to: they must stay inside the project (the working directory)."""
    p = PurePath(value)
    if not value.strip() or p.is_absolute() or ".." in p.parts or value.startswith("~"):
        raise ConfigError(
            f"{key} must be a relative folder inside the project (the working directory), got "
            f"{value!r}; run keras-mtl from the folder the outputs should go under."
        )


@dataclasses.dataclass
class Config:
    name: str
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    tasks: list[TaskConfig] = dataclasses.field(default_factory=list)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    monitor: MonitorConfig = dataclasses.field(default_factory=MonitorConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)

    def check(self, path):
        from keras_mtl.tasks import validate_name

        try:
            validate_name(self.name, "run config")
        except ValueError as e:
            raise ConfigError(f"name: {e}") from None
        seen = set()
        for i, t in enumerate(self.tasks):
            try:
                validate_name(t.name)
            except ValueError as e:
                raise ConfigError(f"tasks[{i}].name: {e}") from None
            if t.name in seen:
                raise ConfigError(f"tasks[{i}].name: duplicate task name {t.name!r}.")
            seen.add(t.name)
        if self.tasks and not any(t.weight > 0 for t in self.tasks):
            raise ConfigError("tasks: every task has weight 0, so nothing would be trained.")
        if self.tasks:
            from keras_mtl._conditions import check_conditions

            try:
                check_conditions([t.build() for t in self.tasks])
            except ValueError as e:
                index = next((i for i, t in enumerate(self.tasks) if f"Task {t.name!r}" in str(e)), None)
                raise ConfigError(f"tasks[{index}].given: {e}" if index is not None else f"tasks: {e}") from None
        if self.model.architecture == "single_task" and len(self.tasks) != 1:
            raise ConfigError(
                "model.architecture single_task trains one task: list exactly one entry in tasks "
                f"(got {len(self.tasks)})."
            )
        if self.model.architecture in ("cross_stitch", "soft_sharing") and len(self.tasks) == 1:
            raise ConfigError(
                f"model.architecture {self.model.architecture} ties the columns of two or more "
                "tasks; list at least two entries in tasks (or none, for the dataset's)."
            )


def _positive(obj, path, key):
    if getattr(obj, key) < 1:
        raise ConfigError(f"{path}.{key} must be >= 1, got {getattr(obj, key)}.")


_PATH_KEYS = {f"data.{k}" for k in ("path", "train", "validation", "test")}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _convert(value: _Any, tp: _Any, path: str) -> _Any:
    if tp is _Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # _Optional[X]
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, path)
    if origin is _Literal:
        # By identity for booleans, by type too for the rest: `true` is not 1, nor 1 `true`.
        if not any(value is a if isinstance(a, bool) or isinstance(value, bool) else (type(value) is type(a) and value == a) for a in args):
            raise ConfigError(f"{path} must be one of {list(args)}, got {value!r}.")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{path} must be a mapping of names to values, got {value!r}.")
        if args:  # dict[str, X]: every value is checked as an X
            return {k: _convert(v, args[1], _join(path, k)) for k, v in value.items()}
        return dict(value)
    if origin is list:
        if isinstance(value, str) and path in _PATH_KEYS:
            value = [value]  # one file (or glob) where a list of them is taken
        if not isinstance(value, list):
            raise ConfigError(f"{path} must be a list, got {type(value).__name__} {value!r}.")
        return [_convert(v, args[0], _join(path, i)) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {type(value).__name__} {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {type(value).__name__} {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {type(value).__name__} {value!r}.")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}.")
        return value
    raise TypeError(f"Unsupported config type {tp} at {path}")  # a bug in this module, not user input


def from_dict(cls, data: _Any, path: str = ""):
    """Builds and validates the dataclass `cls` from plain YAML data.

    Example:
    >>> from_dict(Config, {"name": "demo", "train": {"epochs": 2}}).train.epochs
    2
    """
    where = path or "the config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__} {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean {_join(path, close[0])!r}?" if close else ""
            raise ConfigError(
                f"Unknown config key {_join(path, str(key))!r}{hint} Known keys here: {sorted(fields)}."
            )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"Missing required config key {_join(path, name)!r}.")
    obj = cls(**kwargs)
    if hasattr(obj, "check"):
        obj.check(path or "config")
    return obj


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Applies `key.sub=value` overrides (values parsed as YAML) to raw config data.

    Example:
    >>> apply_overrides({"train": {"epochs": 5}, "tasks": [{"weight": 1}]}, ["train.epochs=1", "tasks.0.weight=2"])
    {'train': {'epochs': 1}, 'tasks': [{'weight': 2}]}
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}.")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else None
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {key}: {'.'.join(parts[:i]) or key} has no item {part!r}.")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i])} is not a mapping.")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and node.get(part) is None:
                    node[part] = {}  # a missing or null section (`aitm: null`) is started by its key
                node = node[part]
    return data


def load(path: str | Path, overrides: list[str] = ()) -> Config:
    """Reads, overrides and validates a YAML run config.

    Example:
    >>> load("examples/census.yaml", ["train.epochs=1"]).train.epochs
    1
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(data).__name__}.")
    return from_dict(Config, apply_overrides(data, list(overrides)))


def to_dict(config: Config) -> dict:
    """The config as plain data (e.g. to save beside the logs)."""
    return dataclasses.asdict(config)


__all__ = [
    "AitmConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "MonitorConfig",
    "OutputConfig",
    "SamplingConfig",
    "SourceConfig",
    "TaskConfig",
    "TrainConfig",
    "TrunkConfig",
    "apply_overrides",
    "choices",
    "from_dict",
    "load",
    "to_dict",
]
