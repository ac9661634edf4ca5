"""One training run from a validated config: data, model, fit, test, export, verify."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import keras
import yaml

from keras_mtl import config as config_lib
from keras_mtl import diagram, distribute, saving
from keras_mtl import data as data_lib
from keras_mtl import export as export_lib
from keras_mtl import models, trunks
from keras_mtl import weighting as weighting_lib
from keras_mtl.callbacks import AtomicBackupAndRestore, AtomicModelCheckpoint, StopOnNonFiniteLoss, monitoring
from keras_mtl._hparams import flatten, log_hparams
from keras_mtl import optimizers
from keras_mtl._conditions import log_groups
from keras_mtl._init_from import initial_model
from keras_mtl.distillation import Distillation
from keras_mtl._logs import split_log_key

@dataclasses.dataclass
class RunResult:
    """What a run produced, for printing and for tests."""

    task_names: list  # the tasks, then their joint probabilities (`<given>_and_<task>`): the metric table's rows
    test_metrics: dict
    log_dir: str
    checkpoint: str
    export_path: str
    verification: dict
    seconds: float


def build_tasks(cfg: config_lib.Config, data: data_lib.MultiTaskData) -> list:
    """The tasks from the config (or the dataset's defaults), checked against the dataset's labels."""
    tasks = [t.build() for t in cfg.tasks] if cfg.tasks else list(data.tasks)
    labels = sorted(data.columns["train"][1])
    for i, t in enumerate(tasks):
        if t.label not in labels:
            raise config_lib.ConfigError(
                f"tasks[{i}] ({t.name!r}) reads label {t.label!r}, which dataset "
                f"{cfg.data.dataset!r} does not have; its labels are {labels}."
            )
    return tasks


def load_data(cfg: config_lib.Config, echo: Callable[[str], None] = print) -> tuple:
    """`(MultiTaskData, tasks)`: the config's dataset, or the mixture of its `data.sources`.

    Example:
    >>> cfg = config_lib.from_dict(config_lib.Config, {"name": "t", "data": {"limit": 300, "batch_size": 64}})
    >>> data, tasks = load_data(cfg, echo=lambda line: None)
    >>> [t.name for t in tasks]
    ['income', 'never_married']
    """
    d = cfg.data
    if d.files():
        return _keep_labels(cfg, *load_files(cfg, echo), echo)
    if not d.sources:
        echo(f"Loading {d.dataset} ...")
        try:
            data = data_lib.datasets.get(d.dataset)(
                batch_size=d.batch_size, validation_fraction=d.validation_fraction, limit=d.limit, seed=cfg.train.seed
            )
        except ValueError as e:  # too few rows to split (data.limit: 1), ...
            limit = f" with data.limit {d.limit}" if d.limit is not None else ""
            raise config_lib.ConfigError(f"data.dataset {d.dataset}{limit}: {e}") from e
        return _keep_labels(cfg, data, build_tasks(cfg, data), echo)
    echo(f"Loading a mixture of {', '.join(f'{n} ({s.dataset})' for n, s in d.sources.items())} ...")
    try:
        data = data_lib.bundled_mixture(
            {name: dataclasses.asdict(source) for name, source in d.sources.items()},
            [t.build() for t in cfg.tasks] or None,
            sampling=d.sampling.build(cfg.train.epochs),
            batch_size=d.batch_size,
            validation_fraction=d.validation_fraction,
            limit=d.limit,
            seed=cfg.train.seed,
            examples_per_epoch=d.examples_per_epoch,
        )
    except ValueError as e:  # a label no source has, sources with different inputs, ...
        raise config_lib.ConfigError(f"data.sources: {e}") from e
    return data, data.tasks


def _keep_labels(cfg: config_lib.Config, data, tasks: list, echo) -> tuple:
    """`data.keep_labels` applied: the label-scarce variant of the training split (seeded by `train.seed`)."""
    if not cfg.data.keep_labels:
        return data, tasks
    echo(f"Keeping {cfg.data.keep_labels} of the training labels (the rest missing).")
    try:
        return data.keep_labels(cfg.data.keep_labels, tasks=tasks, seed=cfg.train.seed), tasks
    except ValueError as e:  # a task the config does not have
        raise config_lib.ConfigError(f"data.{e}") from e


def load_files(cfg: config_lib.Config, echo: Callable[[str], None] = print) -> tuple:
    """`(MultiTaskData, tasks)` of the user's table that `data.path` (or `data.train`, ...) names."""
    d = cfg.data
    if not cfg.tasks:
        raise config_lib.ConfigError(
            "tasks: list the tasks to train on your table, each with the column it reads "
            "(tasks: [{name: income, type: binary, label: income_column}, ...])."
        )
    tasks = [t.build() for t in cfg.tasks]
    files = d.files()
    echo(f"Reading {', '.join(f'{s}: {p}' for s, p in files.items())} ...")
    try:
        data = data_lib.read(
            files if len(files) > 1 else files["train"],
            tasks,
            format=d.format,
            features=d.features or None,
            split=d.split,
            validation_fraction=d.validation_fraction,
            test_fraction=d.test_fraction,
            batch_size=d.batch_size,
            seed=cfg.train.seed,
            name=cfg.name,
            stream=d.stream,
            limit=d.limit,
            echo=echo,
        )
    except (ValueError, OSError) as e:  # a missing column, a bad value, an unreadable file
        raise config_lib.ConfigError(f"data: {e}") from e
    return data, tasks


def default_trunk(data: data_lib.MultiTaskData, units, dropout: float = 0.0):
    """The trunk that fits a dataset's inputs: tabular for feature spaces, text for a
    vectorizer, a CNN for images, an MLP otherwise (width from `units`)."""
    if data.feature_space is not None:
        return trunks.tabular(data.feature_space, units, dropout=dropout)
    if getattr(data, "vectorizer", None) is not None:
        return trunks.text(data.vectorizer, units=units[-1], dropout=dropout)
    inputs = list(data.inputs.values()) if isinstance(data.inputs, dict) else [data.inputs]
    if len(inputs) == 1 and len(inputs[0].shape) in (3, 4):
        return trunks.image(units=units[-1], dropout=dropout)
    return trunks.mlp(units, dropout=dropout)


def build_model(cfg: config_lib.Config, data: data_lib.MultiTaskData, tasks: list):
    """The compiled model the config describes."""
    distillation = None
    # A subset of the dataset's tasks reads its other labels without training on them
    # (and a conditional task's given task from them, when the subset lacks it).
    subset = {"unknown_labels": "ignore"} if _label_keys(data) - {t.label for t in tasks} else {}
    if cfg.model.init_from is not None:
        model, old = initial_model(cfg.model.init_from, data, tasks, cfg.model.freeze)
        model.unknown_labels = subset.get("unknown_labels", model.unknown_labels)
        if cfg.model.keep == "distill":
            # Learning without Forgetting: the old tasks learn the old model's outputs
            # on every example, and their labels where the data has them.
            distillation = Distillation(old, tasks=[t.name for t in old.tasks], label_weight=0.5)
    else:
        model = _new_model(cfg, data, tasks, subset)
    model.compile(
        optimizer=optimizers.get(cfg.train.optimizer, learning_rate=cfg.train.learning_rate),
        weighting=weighting_lib.get(cfg.train.weighting, **cfg.train.weighting_args),
        jit_compile=cfg.train.jit_compile,
        steps_per_execution=cfg.train.steps_per_execution,
        distillation=distillation,
    )
    return model


def _text_input(data: data_lib.MultiTaskData) -> dict:
    """`{name: input}`: the one raw-string input of `data`, or a ConfigError naming its other inputs.

    A pretrained text encoder tokenizes one string per example. Bundled text
    datasets give one (`text`); a table must have exactly one feature column,
    read as text (`data.features: {COLUMN: text}`, other columns `drop`).

    Example:
    >>> import numpy as np
    >>> cols = {s: ({"review": np.asarray(["a b c"], dtype=object)}, {}) for s in ("train", "validation", "test")}
    >>> data = data_lib.MultiTaskData.from_splits(
    ...     "d", {"review": keras.Input((), dtype="string", name="review")}, [], cols, batch_size=1, seed=0)
    >>> sorted(_text_input(data))
    ['review']
    """
    inputs = data.inputs if isinstance(data.inputs, dict) else {getattr(data.inputs, "name", "input"): data.inputs}
    types = data.column_types or {}

    def kind(name):  # how a table reads the column, else the input's dtype and shape
        tensor = inputs[name]
        return types[name].kind if name in types else f"{tensor.dtype} {tuple(tensor.shape[1:])}"

    def is_text(name):
        return inputs[name].dtype == "string" and (name not in types or types[name].kind == "text")

    if len(inputs) == 1 and is_text(next(iter(inputs))):
        return dict(inputs)
    described = ", ".join(f"{name} ({kind(name)})" for name in inputs)
    if types:  # a user's table: say which data.features make it one text column
        strings = [n for n in inputs if is_text(n)] or [n for n in inputs if inputs[n].dtype == "string"]
        if strings:
            keys = [f"{strings[0]}: text"] + [f"{n}: drop" for n in inputs if n != strings[0]]
            fix = f" Read {strings[0]!r} as text and drop the other columns: data.features: {{{', '.join(keys)}}}."
        else:
            fix = " The table has no string column to read as text."
    else:
        fix = " Use a text dataset (trump_tweets, newsgroups) or your own table with one text column."
    raise config_lib.ConfigError(
        f"model.trunk.type pretrained reads one column of raw text, but the data {data.name!r} gives {described}.{fix}"
    )


def _trunk(cfg: config_lib.Config, data: data_lib.MultiTaskData, single: bool):
    """The trunk `model.trunk` describes: the default one for the data, or a pretrained encoder."""
    trunk_cfg = cfg.model.trunk
    if trunk_cfg.type == "default":
        return default_trunk(data, trunk_cfg.units, trunk_cfg.dropout)
    _text_input(data)
    if trunk_cfg.train == "task_lora" and not single and cfg.model.architecture != "shared_bottom":
        # The config is checked for this; compare's --architectures are not.
        raise config_lib.ConfigError(
            f"model.trunk.train: task_lora (one set of LoRA adapters per task) works with model.architecture "
            f"shared_bottom only, not {cfg.model.architecture!r}; use train: lora for it."
        )
    if single and trunk_cfg.train == "task_lora":
        # A single-task model (compare's baselines) has one task: its own
        # adapters on the frozen encoder are plain LoRA.
        trunk_cfg = dataclasses.replace(trunk_cfg, train="lora")
    try:
        return trunk_cfg.pretrained()
    except (ValueError, ImportError) as e:
        raise config_lib.ConfigError(f"model.trunk: {e}") from e


def _new_model(cfg: config_lib.Config, data: data_lib.MultiTaskData, tasks: list, subset: dict):
    """The untrained model of `model.architecture` and `model.trunk`."""
    single = cfg.model.architecture == "single_task"
    trunk = _trunk(cfg, data, single)
    try:
        if single:
            return models.single_task(data.inputs, tasks[0], trunk)
        if cfg.model.aitm is not None:
            return models.aitm(
                data.inputs, tasks, trunk, architecture=cfg.model.architecture, **cfg.model.aitm.kwargs(),
                **cfg.model.hyperparameters(), **subset,
            )
        return models.get(cfg.model.architecture)(data.inputs, tasks, trunk, **cfg.model.hyperparameters(), **subset)
    except ValueError as e:  # the factories check their arguments and tasks
        # A pretrained preset is loaded (and can fail) when the model is built on it.
        key = "model.trunk" if str(e).startswith("trunks.pretrained") else (
            "model.aitm" if str(e).startswith("aitm") else f"model.architecture {cfg.model.architecture}")
        raise config_lib.ConfigError(f"{key}: {e}") from e


def _label_keys(data: data_lib.MultiTaskData) -> set:
    spec = data.train.element_spec
    labels = spec[1] if isinstance(spec, tuple) and len(spec) > 1 else {}
    return set(labels) if isinstance(labels, dict) else set()


def fitting_data(cfg: config_lib.Config, data: data_lib.MultiTaskData, model) -> data_lib.MultiTaskData:
    """The data as `model` trains on it, with the model made ready for it.

    Regression targets are standardised with the training labels (a streamed
    table: its sample); with `train.preprocess: once` the model's
    lookups/tokenisation run once here instead of in every step (the
    checkpoint and the export still take raw features).
    """
    if "train" in data.columns and not cfg.data.sources:
        model.adapt_targets(data.columns["train"][1])
    if cfg.train.preprocess == "once" and not cfg.data.sources:
        return data.encoded(model)
    return data


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def run(cfg: config_lib.Config, echo: Callable[[str], None] = print) -> RunResult:
    """Trains, tests, exports and verifies the model that `cfg` describes.

    Writes TensorBoard logs to `logs_dir/<name>/<run>/`, the best checkpoint
    (lowest validation loss) to `checkpoint_dir/<name>/<run>/best.keras`, a
    AtomicBackupAndRestore backup to `checkpoint_dir/<name>/<run>/backup/` (rerun
    the same command with the same `output.run` to resume after a crash),
    and the export to `export_dir/<name>/<version>/`. Under a multi-worker
    strategy only the chief writes there; other workers write to a temporary
    folder that is removed afterwards.
    """
    start = time.time()
    # The strategy comes first: Keras must not build anything before it exists.
    strategy = distribute.get_strategy(cfg.train.strategy)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    chief = _is_chief(strategy)
    scratch = None if chief else tempfile.mkdtemp(prefix="keras_mtl_worker_")
    try:
        return _run(cfg, strategy, chief, scratch, start, echo)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(cfg, strategy, chief, scratch, start, echo) -> RunResult:
    keras.utils.set_random_seed(cfg.train.seed)
    run_name = cfg.output.run or time.strftime("%Y%m%d-%H%M%S")
    root = Path(scratch) if scratch else Path(".")
    log_dir = root / cfg.output.logs_dir / cfg.name / run_name
    ckpt_dir = root / cfg.output.checkpoint_dir / cfg.name / run_name
    backup_dir = ckpt_dir / "backup"
    checkpoint = ckpt_dir / "best.keras"
    resuming = backup_dir.is_dir() and any(backup_dir.iterdir())
    # Trained to the end, then stopped (killed, a full disk) before its test and export.
    finishing = not resuming and (ckpt_dir / TRAINED).is_file() and not (ckpt_dir / FINISHED).is_file()
    # Stopped before its first backup (killed in epoch 1, a NaN at step 2): nothing
    # to resume from, so the same command starts it again from scratch.
    restarting = not (resuming or (ckpt_dir / TRAINED).is_file()) and (log_dir / "config.yaml").is_file()
    for d in (log_dir, ckpt_dir):
        if d.exists() and any(d.iterdir()) and not (resuming or finishing or restarting):
            raise FileExistsError(f"{d} already holds a run called {run_name!r}; choose another output.run.")
    if resuming or finishing or restarting:
        _check_same_config(cfg, log_dir / "config.yaml", run_name)
    if restarting:
        echo(f"Run {run_name!r} stopped before its first backup; starting it again from scratch.")
        # Its partial TensorBoard logs and checkpoint would mix with the new run's.
        for d in (log_dir, ckpt_dir):
            shutil.rmtree(d, ignore_errors=True)
    # Found now rather than after the whole fit: a folder the run could not write to.
    outputs = {"output.logs_dir": log_dir, "output.checkpoint_dir": ckpt_dir}
    if chief:
        outputs["output.export_dir"] = Path(cfg.output.export_dir) / cfg.name
    for key, folder in outputs.items():
        _check_writable(folder, key)

    data, tasks = load_data(cfg, echo)
    with strategy.scope():
        model = build_model(cfg, data, tasks)
    raw = data
    data = fitting_data(cfg, raw, model)

    log_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "config.yaml").write_text(yaml.safe_dump(config_lib.to_dict(cfg), sort_keys=False))
    # The architecture diagram goes beside the logs, where `keras-mtl report` looks.
    if diagram.save_diagram(model, log_dir / diagram.FILENAME) is None:
        echo(diagram.MISSING)
    # A mixture's validation set is its sources one after another, so its first
    # batch labels one source's tasks only: probe a (mixed) training batch instead.
    probe = next(iter(data.train if cfg.data.sources else data.validation))
    callbacks = monitoring(
        str(log_dir),
        probe,
        model=model,
        conflict_every=cfg.monitor.conflict_every,
        affinity_every=cfg.monitor.affinity_every,
    ) + [
        # Names the task(s) and the step at the first non-finite loss or weight.
        StopOnNonFiniteLoss(),
        # keras_mtl's versions write atomically: a crash mid-save leaves the last good file.
        AtomicModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True),
        AtomicBackupAndRestore(str(backup_dir), save_freq=cfg.output.backup_every or "epoch"),
    ]
    echo(
        f"{'Finishing' if finishing else 'Resuming' if resuming else 'Training'} {model.name} on tasks "
        f"{[t.name for t in tasks]} (weighting={cfg.train.weighting}, {strategy.num_replicas_in_sync} "
        f"replica(s), {cfg.train.precision}); TensorBoard logs in {log_dir}"
    )
    try:
        if not finishing:  # a finishing run was trained already: it tests and exports the best checkpoint
            model.fit(
                data.train,
                validation_data=data.validation,
                epochs=cfg.train.epochs,
                # An annealed mixture spans all epochs, each with its own distribution.
                steps_per_epoch=len(data.train) // cfg.train.epochs if cfg.data.sampling.name == "annealed" else None,
                callbacks=callbacks,
                verbose=cfg.train.verbose,
                shuffle=False,  # the dataset shuffles itself, every epoch
            )
            (ckpt_dir / TRAINED).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    except BaseException:
        # A run that failed before saving anything (e.g. a NaN at step 2) leaves no
        # empty checkpoint folder; backups and a best checkpoint stay for a resume.
        if not any(p.is_file() for p in ckpt_dir.rglob("*")):
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        raise
    with strategy.scope():
        best = saving.load_model(checkpoint)
    # Raw test features: encoded ones are keyed by this process's layer names,
    # which a checkpoint written by an earlier process (a resume) need not share.
    test_metrics = best.evaluate(raw.test, verbose=0, return_dict=True)
    (log_dir / "test_metrics.json").write_text(json.dumps(test_metrics, indent=2))
    log_hparams(str(log_dir), flatten(config_lib.to_dict(cfg)), test_metrics, run_name)
    if not chief:
        (ckpt_dir / FINISHED).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
        return RunResult(log_groups(tasks), test_metrics, str(log_dir), str(checkpoint), "", {}, time.time() - start)

    # A few test rows become the warmup requests TF Serving replays on load
    # (8: small enough for any max_batch_size a batching config would set).
    export_path = export_lib.export_saved_model(
        best, Path(cfg.output.export_dir) / cfg.name, warmup_samples=data.sample(8, "test")
    )
    echo(f"Exported to {export_path}; verifying every signature as TF Serving loads it ...")
    report = export_lib.verify(export_path, data.sample(64, "test"), best)
    (ckpt_dir / FINISHED).write_text(f"{export_path}\n")
    return RunResult(
        task_names=log_groups(tasks),
        test_metrics=test_metrics,
        log_dir=str(log_dir),
        checkpoint=str(checkpoint),
        export_path=export_path,
        verification=report,
        seconds=time.time() - start,
    )


def _check_writable(folder: Path, key: str) -> None:
    """Raises PermissionError unless `folder` exists writable or could be made (nothing is created)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{key}: cannot write to {folder}: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"{key}: cannot write to {folder}: {existing} is not writable. Choose another folder "
            f"(--set {key}=...) or fix its permissions; nothing was trained."
        )


# Written beside the checkpoint once `fit` returns: a rerun of the same
# `output.run` then finishes the test and export instead of refusing.
TRAINED = "TRAINED"
# Written once the export is verified (its path inside): a run killed during
# its test or export is finished by a rerun, a finished one is refused.
FINISHED = "FINISHED"

# Config keys a resumed run may change: they do not change what is trained
# (output keys choose where things go; the run folder is the same one).
_RESUMABLE_CHANGES = ("train.epochs", "train.verbose", "output.")


def _check_same_config(cfg: config_lib.Config, saved: Path, run_name: str) -> None:
    """Refuses to resume (or finish) a run with a config other than the one it started with."""
    if not saved.is_file():
        return
    before = flatten(yaml.safe_load(saved.read_text()) or {})
    now = flatten(config_lib.to_dict(cfg))
    # A key added to the schema after the run started (model.trunk.type) is
    # missing from its saved config; at its default it changes nothing.
    defaults = flatten(config_lib.to_dict(config_lib.Config(name=cfg.name)))
    changed = sorted(
        k for k in set(before) | set(now)
        if before.get(k) != now.get(k) and not k.startswith(_RESUMABLE_CHANGES)
        and not (k not in before and k in defaults and now.get(k) == defaults[k])
    )
    if changed:
        diffs = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise config_lib.ConfigError(
            f"Run {run_name!r} was started with another config ({diffs}; see {saved}). Resume it "
            "with the config it started with, or choose another output.run for the new one."
        )


def metric_table(metrics: dict, task_names: list[str]) -> str:
    """Formats `{task_metric: value}` as one row per task.

    Example:
    >>> print(metric_table({"a_loss": 0.5, "a_auc": 0.9, "loss": 0.5}, ["a"]))
    task  auc     loss
    a     0.9000  0.5000
    """
    rows, columns = {name: {} for name in task_names}, set()
    for key, value in metrics.items():
        # The longest task name owns a key: with tasks `a` and `a_b`, `a_b_auc` is a_b's.
        owner = split_log_key(key, task_names, prefixes=("",))
        if owner is not None:
            rows[owner[1]][owner[2]] = value
            columns.add(owner[2])
    columns = sorted(columns)
    width = max([4] + [len(n) for n in task_names]) + 2
    col_w = max([6] + [len(c) for c in columns]) + 2
    lines = ["task".ljust(width) + "".join(c.ljust(col_w) for c in columns).rstrip()]
    for name, row in rows.items():
        cells = "".join(
            (f"{row[c]:.4f}" if c in row else "-").ljust(col_w) for c in columns
        ).rstrip()
        lines.append(name.ljust(width) + cells)
    return "\n".join(lines)
