"""Does multi-task learning help here? Single-task baselines against multi-task settings, over seeds.

`compare(cfg, ...)` trains, for every seed, each task's single-task model
(the same trunk, optimizer, epochs and data as the multi-task model), each
multi-task setting (architecture x weighting) and, optionally, task
groupings, then reports every task's test metric (mean +- std over seeds),
the multi-task gain Δm of each setting and which per-task differences
exceed the seed noise. Runs of one seed share the data split and the seed of
their initialisation, so the comparison between settings is paired.

Δm (Maninis et al., CVPR 2019; Vandenhende et al., TPAMI 2021) is the mean,
over tasks, of the relative change of a task's metric against its
single-task baseline, in percent, sign-corrected so that positive is better
for metrics where lower is better (losses, errors).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
import typing
from pathlib import Path

import keras
import numpy as np

from keras_mtl import config as config_lib
from keras_mtl import distribute
from keras_mtl._hparams import log_hparams
from keras_mtl.callbacks import TaskAffinity

__all__ = [
    "Comparison",
    "Setting",
    "compare",
    "delta_m",
    "lower_is_better",
    "paired_difference",
    "parse_groups",
]

SINGLE = "single_task"
# Metric names (or their endings) where a smaller value is better.
_LOWER = ("loss", "mae", "mse", "rmse", "error", "crossentropy", "hinge", "logcosh", "ece")


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of the metric called `metric` is better (losses and errors).

    Example:
    >>> lower_is_better("rmse"), lower_is_better("auc"), lower_is_better("mean_absolute_error")
    (True, False, True)
    """
    return metric.lower().endswith(_LOWER)


def delta_m(
    multi: typing.Mapping[str, float], single: typing.Mapping[str, float], lower: typing.Mapping[str, bool]
) -> float:
    """Δm in percent: the mean over tasks of (-1)^l_t (M_multi,t - M_single,t) / M_single,t x 100.

    `lower[t]` is True for a task whose metric is better when lower (the sign
    flips so that a positive Δm is a gain on every kind of metric).

    Example: AUC 0.90 -> 0.92 (+2.22%) and MAE 2.0 -> 1.5 (+25%, lower is better):
    >>> round(delta_m({"a": 0.92, "b": 1.5}, {"a": 0.90, "b": 2.0}, {"a": False, "b": True}), 4)
    13.6111
    """
    if set(multi) != set(single) or set(multi) - set(lower):
        raise ValueError(
            f"delta_m needs the same tasks on both sides and a direction for each: multi {sorted(multi)}, "
            f"single {sorted(single)}, lower {sorted(lower)}."
        )
    if not multi:
        raise ValueError("delta_m needs at least one task.")
    terms = []
    for task, base in single.items():
        if base == 0:
            raise ValueError(f"delta_m: task {task!r} has single-task metric 0; a relative change is undefined.")
        sign = -1.0 if lower[task] else 1.0
        terms.append(sign * (multi[task] - base) / abs(base))
    return 100.0 * float(np.mean(terms))


def paired_difference(a: typing.Sequence[float], b: typing.Sequence[float], confidence: float = 0.95) -> tuple[float, float, bool | None]:
    """`(mean, half_width, significant)` of the per-seed differences a_s - b_s (a paired t interval).

    `significant` is whether the `confidence` interval of the mean difference
    excludes 0: the difference exceeds the seed noise. With one seed there is
    no noise estimate and `significant` is None.

    Example: differences 0.01, 0.012, 0.011 (3 seeds): mean 0.011, half-width
    t(0.975, 2) x 0.001 / sqrt(3) = 4.303 x 0.000577 = 0.00248:
    >>> m, h, s = paired_difference([0.91, 0.912, 0.911], [0.90, 0.90, 0.90])
    >>> round(m, 4), round(h, 5), s
    (0.011, 0.00248, True)
    """
    from scipy import stats

    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference needs two equally long, non-empty lists, got {len(a)} and {len(b)}.")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean = float(d.mean())
    if len(d) == 1:
        return mean, math.nan, None
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return mean, half, bool(abs(mean) > half)


def parse_groups(text: str, task_names: typing.Sequence[str]) -> list[list[str]]:
    """A grouping written as `a,b|c`: groups split by `|`, tasks by `,`; every task exactly once.

    Example:
    >>> parse_groups("income,never_married|hours", ["income", "never_married", "hours"])
    [['income', 'never_married'], ['hours']]
    """
    groups = [[t.strip() for t in g.split(",") if t.strip()] for g in text.split("|")]
    _check_grouping(groups, task_names, repr(text))
    return groups


def _check_grouping(groups, task_names, shown: str) -> None:
    listed = [t for g in groups for t in g]
    unknown = sorted(set(listed) - set(task_names))
    if unknown:
        raise ValueError(f"grouping {shown}: unknown task(s) {unknown}; the tasks are {list(task_names)}.")
    if any(not g for g in groups) or sorted(listed) != sorted(task_names):
        raise ValueError(
            f"grouping {shown} must name every task exactly once, in non-empty groups "
            f"(tasks: {list(task_names)})."
        )


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way of training the tasks: which tasks train together, with which architecture and weighting.

    `groups` lists the models of this setting (each a list of task names); a
    group of one task is that task's single-task model.
    """

    name: str
    architecture: str
    weighting: str
    groups: tuple[tuple[str, ...], ...]


@dataclasses.dataclass
class Comparison:
    """Per-seed test metrics of every setting, and what they say against single-task.

    `scores[setting][task]` holds one value per seed of the task's metric
    `metrics[task]` (a higher-is-better or lower-is-better metric, see `lower`).
    """

    tasks: list[str]
    metrics: dict[str, str]
    lower: dict[str, bool]
    seeds: list[int]
    scores: dict[str, dict[str, list[float]]]
    settings: list[Setting]
    seconds: float = 0.0
    output_dir: str = ""

    def delta_m(self, setting: str) -> list[float]:
        """Δm of `setting` against single-task, one value per seed (paired by seed)."""
        single, multi = self.scores[SINGLE], self.scores[setting]
        return [
            delta_m({t: multi[t][s] for t in self.tasks}, {t: single[t][s] for t in self.tasks}, self.lower)
            for s in range(len(self.seeds))
        ]

    def rows(self) -> list[dict]:
        """One row per (setting, task): mean, std, difference to single-task and whether it exceeds the seed noise."""
        out = []
        for setting in self.settings:
            dm = self.delta_m(setting.name) if setting.name != SINGLE else None
            for task in self.tasks:
                values = self.scores[setting.name][task]
                row = {
                    "setting": setting.name,
                    "task": task,
                    "metric": self.metrics[task],
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
                    "seeds": len(values),
                    "values": values,
                }
                if dm is not None:
                    diff, half, significant = paired_difference(values, self.scores[SINGLE][task])
                    row.update(
                        difference=diff,
                        interval=half,
                        better=(diff < 0) == self.lower[task] if diff != 0 else False,
                        exceeds_noise=significant,
                        delta_m_mean=float(np.mean(dm)),
                        delta_m_std=float(np.std(dm, ddof=1)) if len(dm) > 1 else math.nan,
                    )
                out.append(row)
        return out

    def cells(self) -> tuple[list[str], list[list[str]]]:
        """`(header, rows)` of the comparison table, as text cells (the terminal table and the report share them)."""
        head = ["setting"] + [f"{t} ({self.metrics[t]})" for t in self.tasks] + ["Δm % (vs single_task)"]
        lines = []
        for setting in self.settings:
            cells = [setting.name]
            for task in self.tasks:
                values = self.scores[setting.name][task]
                cell = _mean_std(values)
                if setting.name != SINGLE:
                    diff, _, significant = paired_difference(values, self.scores[SINGLE][task])
                    cell += f" {diff:+.4f}{'*' if significant else ''}"
                cells.append(cell)
            dm = self.delta_m(setting.name) if setting.name != SINGLE else None
            cells.append("-" if dm is None else _mean_std(dm, digits=2))
            lines.append(cells)
        return head, lines

    def note(self) -> str:
        """How to read the table."""
        return (
            f"{len(self.seeds)} seed(s) {self.seeds}; mean ± std; the signed number is the paired difference "
            "to single_task, * where its 95% interval excludes 0 (beyond the seed noise)."
        )

    def table(self) -> str:
        """The comparison as a text table: one row per setting, one column per task, then Δm."""
        head, lines = self.cells()
        widths = [max(len(r[i]) for r in [head] + lines) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        return "\n".join([fmt(head)] + [fmt(r) for r in lines] + [self.note()])

    def to_json(self) -> dict:
        return {
            "tasks": self.tasks,
            "metrics": self.metrics,
            "lower_is_better": self.lower,
            "seeds": self.seeds,
            "settings": [dataclasses.asdict(s) for s in self.settings],
            "scores": self.scores,
            "delta_m": {s.name: self.delta_m(s.name) for s in self.settings if s.name != SINGLE},
            "rows": self.rows(),
            "seconds": self.seconds,
        }

    @classmethod
    def load(cls, directory: str | Path) -> "Comparison":
        """The comparison that `save` wrote into `directory`."""
        saved = json.loads((Path(directory) / "comparison.json").read_text())
        return cls(
            tasks=saved["tasks"],
            metrics=saved["metrics"],
            lower=saved["lower_is_better"],
            seeds=saved["seeds"],
            scores=saved["scores"],
            settings=[Setting(s["name"], s["architecture"], s["weighting"], tuple(map(tuple, s["groups"])))
                      for s in saved["settings"]],
            seconds=saved["seconds"],
            output_dir=str(directory),
        )

    def save(self, directory: str | Path) -> None:
        """Writes `comparison.json` and `comparison.csv` (the rows) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "comparison.json").write_text(json.dumps(self.to_json(), indent=2))
        rows = self.rows()
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(directory / "comparison.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows({**r, "values": " ".join(f"{v:.6g}" for v in r["values"])} for r in rows)


def _mean_std(values: typing.Sequence[float], digits: int = 4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _settings(task_names, variants, groupings) -> list[Setting]:
    everything = (tuple(task_names),)
    out = [Setting(SINGLE, SINGLE, "fixed", tuple((t,) for t in task_names))]
    for architecture, weighting in variants:
        out.append(Setting(f"{architecture}/{weighting}", architecture, weighting, everything))
    architecture, weighting = variants[0]
    for groups in groupings:
        _check_grouping(groups, task_names, str([list(g) for g in groups]))
        groups = tuple(tuple(g) for g in groups)
        if groups == everything or all(len(g) == 1 for g in groups):
            continue  # all-in-one and all-separate are already in the comparison
        name = "groups " + " | ".join(",".join(g) for g in groups)
        if name not in {s.name for s in out}:
            out.append(Setting(name, architecture, weighting, groups))
    return out


class _BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the lowest `val_loss` and restores them at the end.

    The same selection as `keras-mtl train`'s best checkpoint, held in memory.
    """

    def on_train_begin(self, logs=None):
        self.best, self.weights = math.inf, None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss", math.nan)
        if loss < self.best:
            self.best, self.weights = loss, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


def _chosen_metrics(tasks, given: typing.Mapping[str, str]) -> dict[str, str]:
    """The metric compared per task: `given[task]` (checked) or the task's first metric."""
    unknown = sorted(set(given) - {t.name for t in tasks})
    if unknown:
        raise ValueError(f"metrics names unknown task(s) {unknown}; the tasks are {[t.name for t in tasks]}.")
    chosen = {}
    for t in tasks:
        names = [m.name for m in t.metrics()]
        if t.name in given and given[t.name] not in names + ["loss"]:
            raise ValueError(f"metrics[{t.name!r}] = {given[t.name]!r}: task {t.name!r} logs {names + ['loss']}.")
        chosen[t.name] = given.get(t.name) or (names[0] if names else "loss")
    return chosen


def _suggested(probe: TaskAffinity, task_names) -> list[list[list[str]]]:
    """The groupings (2 .. T-1 groups) that the affinity measured by `probe` suggests."""
    from keras_mtl import diagnostics

    try:
        mean = probe.mean
    except ValueError as e:  # fewer steps than one probe interval
        raise ValueError(
            f"suggest_groups: no task affinity was measured ({e}); lower monitor.affinity_every "
            f"(now {probe.every_n_steps}) below the number of training steps."
        ) from e
    return [diagnostics.suggest_groups(mean, task_names, k) for k in range(2, len(task_names))]


def _train_group(cfg, data, tasks, strategy, callbacks=()):
    """Trains one model of `tasks` (single-task for one) as `cfg` says; returns its test metrics."""
    from keras_mtl import training

    run_cfg = cfg
    if len(tasks) == 1:
        run_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, architecture=SINGLE))
    keras.utils.set_random_seed(cfg.train.seed)
    with strategy.scope():
        model = training.build_model(run_cfg, data, tasks)
    # A group (or a single task) reads only its own tasks' labels from the shared dataset.
    model.unknown_labels = "ignore"
    fit_data = training.fitting_data(cfg, data, model)
    model.fit(
        fit_data.train,
        validation_data=fit_data.validation,
        epochs=cfg.train.epochs,
        callbacks=[_BestWeights(), *callbacks],
        verbose=0,
        shuffle=False,
    )
    metrics = model.evaluate(fit_data.test, verbose=0, return_dict=True)
    keras.backend.clear_session()
    return metrics


def compare(
    cfg: config_lib.Config,
    *,
    variants: typing.Sequence[tuple[str, str]] | None = None,
    seeds: int | typing.Sequence[int] = 3,
    groupings: typing.Sequence[typing.Sequence[typing.Sequence[str]]] = (),
    suggest_groups: bool = False,
    metrics: typing.Mapping[str, str] | None = None,
    output_dir: str | Path | None = None,
    echo: typing.Callable[[str], None] = print,
) -> Comparison:
    """Trains single-task baselines and multi-task settings of `cfg` over seeds and compares them.

    Args:
        cfg: a run config (`keras_mtl.config.load`); its data, tasks, trunk,
            optimizer, epochs and batch size are every run's budget.
        variants: `(architecture, weighting)` pairs to train all tasks
            with; default: the config's own.
        seeds: how many seeds (`cfg.train.seed`, +1, ...) or the seeds
            themselves. Each seed gives its own data split and initialisation,
            shared by every setting.
        groupings: task groupings to train as well, each a list of groups
            of task names (e.g. `[[["a", "b"], ["c"]]]`); each group is one
            model with the first variant's architecture and weighting.
        suggest_groups: measure the lookahead task affinity (Fifty et al.,
            2021) during the first variant's run of each seed, average it
            over seeds, and train the groupings it suggests for 2 .. T-1
            groups (T >= 3 tasks) as well.
        metrics: the metric to compare per task (default: the task's first
            metric, e.g. `auc` for Binary, `mae` for Regression).
        output_dir: where `comparison.json`, `comparison.csv` and the
            TensorBoard HParams of every run go (default
            `<logs_dir>/<name>/compare-<time>`).

    Example (two tasks on a small census slice, one seed, one epoch)::

        cfg = mtl.config.load("examples/census.yaml", ["data.limit=3000", "train.epochs=1"])
        result = mtl.compare(cfg, variants=[("mmoe", "uncertainty")], seeds=1)
        print(result.table())
    """
    from keras_mtl import training

    start = time.time()
    seed_list = [cfg.train.seed + i for i in range(seeds)] if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("compare needs at least one seed.")
    variants = [tuple(v) for v in (variants or [(cfg.model.architecture, cfg.train.weighting)])]
    for architecture, _ in variants:
        if architecture == SINGLE:
            raise ValueError("single_task is every comparison's baseline; list multi-task architectures in variants.")
    output_dir = Path(output_dir or Path(cfg.output.logs_dir) / cfg.name / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
    strategy = distribute.get_strategy(cfg.train.strategy)

    results: dict[tuple, dict[str, list[float]]] = {}  # (architecture, weighting, group) -> task -> per-seed
    task_names, chosen = None, {}
    settings: list[Setting] = []

    def train(seed_cfg, data, tasks, setting, group, extra=()):
        arch = SINGLE if len(group) == 1 else setting.architecture
        key = (arch, "fixed" if arch == SINGLE else setting.weighting, group)
        done = results.setdefault(key, {t: [] for t in group})
        if len(done[group[0]]) > seed_list.index(seed_cfg.train.seed):
            return  # the same model of this seed is already trained (a group of another setting)
        echo(f"  seed {seed_cfg.train.seed}: {arch}{'' if arch == SINGLE else '/' + key[1]} on {list(group)}")
        run_cfg = dataclasses.replace(
            seed_cfg, train=dataclasses.replace(seed_cfg.train, weighting=key[1]),
            model=dataclasses.replace(seed_cfg.model, architecture=arch),
        )
        by_name = {t.name: t for t in tasks}
        test = _train_group(run_cfg, data, [by_name[t] for t in group], strategy, extra)
        for t in group:
            done[t].append(float(test[f"{t}_{chosen[t]}"]))
        log_hparams(
            str(output_dir / "runs" / f"{arch}-{key[1]}-{'_'.join(group)}-seed{seed_cfg.train.seed}"),
            {"architecture": arch, "weighting": key[1], "tasks": ",".join(group), "seed": seed_cfg.train.seed},
            {f"{t}_{chosen[t]}": done[t][-1] for t in group},
            f"{arch}-{key[1]}-{'_'.join(group)}-seed{seed_cfg.train.seed}",
        )

    for seed in seed_list:
        seed_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
        data, tasks = training.load_data(seed_cfg, echo=lambda line: None)
        if task_names is None:
            task_names = [t.name for t in tasks]
            chosen.update(_chosen_metrics(tasks, metrics or {}))
            settings = _settings(task_names, variants, groupings)
            echo(f"Comparing {len(settings)} setting(s) on tasks {task_names} over seeds {seed_list}; "
                 f"metrics {chosen}; results in {output_dir}")
        i = 0
        while i < len(settings):  # suggested groupings join the list during the first seed
            setting = settings[i]
            probing = suggest_groups and i == 1 and seed == seed_list[0] and len(task_names) > 2
            probe = None
            if probing:
                # Affinity on a fixed validation batch, as `keras-mtl train`'s monitoring measures it.
                # At least ~8 measurements over the run, however short it is.
                steps = int(data.train.cardinality()) * cfg.train.epochs
                every = max(1, min(cfg.monitor.affinity_every or 200, steps // 8 if steps > 0 else 200))
                probe = TaskAffinity(str(output_dir / "affinity"), next(iter(data.validation)), every_n_steps=every)
            for group in setting.groups:
                train(seed_cfg, data, tasks, setting, group, () if probe is None else (probe,))
            if probing:
                proposed = _suggested(probe, task_names)
                echo(f"Groupings suggested by the task affinity of {setting.name}: {proposed}")
                names = {s.name for s in settings}
                settings += [s for s in _settings(task_names, variants, proposed) if s.name not in names]
            i += 1

    scores = {}
    for setting in settings:
        scores[setting.name] = {}
        for group in setting.groups:
            arch = SINGLE if len(group) == 1 else setting.architecture
            key = (arch, "fixed" if arch == SINGLE else setting.weighting, tuple(group))
            scores[setting.name].update(results[key])
    comparison = Comparison(
        tasks=task_names,
        metrics=chosen,
        lower={t: lower_is_better(m) for t, m in chosen.items()},
        seeds=seed_list,
        scores=scores,
        settings=settings,
        seconds=time.time() - start,
        output_dir=str(output_dir),
    )
    comparison.save(output_dir)
    return comparison
