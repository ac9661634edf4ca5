"""Issue 23: a bounded search for the best census-income configuration (test AUC, exact).

Each config is `examples/census.yaml` plus `--set`-style overrides, built and
trained as `keras-mtl train` does (bench_census_gap.run_default's path) and
scored with the exact rank AUC (sklearn) on the test rows, for the last
epoch's weights and for the lowest-validation-loss epoch's (what `train`'s
best checkpoint and `compare` keep).

    .venv/bin/python benchmarks/bench_census_best.py --screen            # every config, seed 0
    .venv/bin/python benchmarks/bench_census_best.py --confirm ple wide256     # seeds 0 1 2
    .venv/bin/python benchmarks/bench_census_best.py --screen --only default e10 --set data.keep_labels.income=0.02
"""

from __future__ import annotations

import argparse
import json
import time

import keras
import numpy as np

import keras_mtl as mtl
from keras_mtl import training

import bench_census_gap as gap

# name -> overrides of examples/census.yaml (train.epochs set where not 5).
CONFIGS = {
    "default": [],
    "e10": ["train.epochs=10"],
    "lr3e-4_e10": ["train.epochs=10", "train.learning_rate=0.0003"],
    "lr2e-3": ["train.learning_rate=0.002"],
    "b512": ["data.batch_size=512"],
    "b2048_lr2e-3": ["data.batch_size=2048", "train.learning_rate=0.002"],
    "drop0.2": ["model.trunk.dropout=0.2"],
    "wide256": ["model.trunk.units=[256,128]"],
    "wide512_drop0.2": ["model.trunk.units=[512,256,128]", "model.trunk.dropout=0.2"],
    "mmoe": ["model.architecture=mmoe"],
    "cgc": ["model.architecture=cgc"],
    "ple": ["model.architecture=ple"],
    "uncertainty": ["train.weighting=uncertainty"],
    "dwa": ["train.weighting=dwa"],
    # Round 2: the round-1 leaders combined / trained longer.
    "e20": ["train.epochs=20"],
    "lr2e-3_e10": ["train.learning_rate=0.002", "train.epochs=10"],
    "wide256_e10": ["model.trunk.units=[256,128]", "train.epochs=10"],
    "wide256_drop0.2_e10": ["model.trunk.units=[256,128]", "model.trunk.dropout=0.2", "train.epochs=10"],
    "wide256_lr2e-3": ["model.trunk.units=[256,128]", "train.learning_rate=0.002"],
    "mmoe_e10": ["model.architecture=mmoe", "train.epochs=10"],
    "adamw_e10": ["train.optimizer=adamw", "train.epochs=10"],
    "towers32_e10": ["tasks.0.tower=[32]", "tasks.1.tower=[32]", "train.epochs=10"],
    "ple_e10": ["model.architecture=ple", "train.epochs=10"],
    "ple_wide": ["model.architecture=ple", "model.expert_units=[128,64]"],
}


class TaskWeights(keras.callbacks.Callback):
    """Keeps each epoch's logged mean task weights (`<task>_weight`), e.g. what uncertainty learned."""

    def on_train_begin(self, logs=None):
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({k[:-len("_weight")]: round(float(v), 3) for k, v in (logs or {}).items()
                            if k.endswith("_weight") and not k.startswith("val_")})


def run(name: str, overrides: list, seed: int) -> dict:
    """Trains one config on one seed; {"last"|"best": {task: exact AUC}, "best_epoch", "fit_s", "weights"}."""
    cfg = mtl.config.load("examples/census.yaml", [*CONFIGS[name], *overrides, f"train.seed={seed}"])
    data, tasks = training.load_data(cfg, echo=lambda line: None)
    keras.utils.set_random_seed(seed)
    model = training.build_model(cfg, data, tasks)
    fit = training.fitting_data(cfg, data, model)
    weights = TaskWeights()
    r = gap.fit_and_score(model, (fit.train,), fit.validation, fit.test, data.columns["test"][1],
                          extra=[weights], epochs=cfg.train.epochs, shuffle=False)
    keras.backend.clear_session()
    # scores() gives (Keras 200 thr., exact, 2,000, 20,000); keep the exact one.
    return {"name": name, "seed": seed, "best_epoch": r["best_epoch"] + 1, "fit_s": round(r["fit_s"], 1),
            "weights": weights.epochs[-1] if weights.epochs else {},
            **{w: {t: r[w][t][1] for t in gap.TASKS} for w in ("last", "best")}}


def table(results: list) -> str:
    """Markdown: per config, mean ± std (over its seeds) of exact test AUC income / never-married."""
    lines = ["| config | overrides | seeds | best-val epoch, exact AUC income / never-married | last epoch | best epoch(s) | fit s |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["name"] for r in results):
        rs = [r for r in results if r["name"] == name]
        cells = []
        for which in ("best", "last"):
            parts = []
            for t in gap.TASKS:
                v = np.array([r[which][t] for r in rs])
                parts.append(f"{v.mean():.4f}" + (f" ± {v.std(ddof=1):.4f}" if len(v) > 1 else ""))
            cells.append(" / ".join(parts))
        lines.append(f"| {name} | `{' '.join(CONFIGS[name]) or '-'}` | {len(rs)} | {cells[0]} | {cells[1]} | "
                     f"{','.join(str(r['best_epoch']) for r in rs)} | {np.mean([r['fit_s'] for r in rs]):.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--screen", action="store_true", help="every config (or --only), seed 0")
    mode.add_argument("--confirm", nargs="+", choices=CONFIGS, metavar="NAME", help="these configs, --seeds")
    parser.add_argument("--only", nargs="+", choices=CONFIGS, default=None, help="with --screen: these configs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="with --confirm")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra overrides for every run")
    parser.add_argument("--out", default=None, help="append every run's scores to this JSON-lines file")
    args = parser.parse_args()
    names, seeds = (args.only or list(CONFIGS), [0]) if args.screen else (args.confirm, args.seeds)
    t0, results = time.time(), []
    for seed in seeds:
        for name in names:
            r = run(name, args.set, seed)
            results.append(r)
            print(json.dumps(r), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    print(table(results))
    print(f"Done in {time.time() - t0:.0f} s.")


if __name__ == "__main__":
    main()
