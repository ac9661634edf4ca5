"""Issue 20, a user's own table: `from_dataframe` against plain Keras on the user's own tf.data pipeline.

(a) census-income read as a user would read it (pandas, both UCI CSVs as one
    299,285-row table, no hand-written feature spec), two Binary tasks,
    shared-bottom 128-64, batch 1024, Adam 1e-3, AUC + accuracy per task on
    both sides, `--epochs` epochs, in one process, variants alternating:
      - keras_mtl: `mtl.data.from_dataframe(df, tasks)` (types inferred, a
        seeded 80/10/10 split), `data.encoded(model)`, `model.fit` with the
        defaults (XLA chosen by `jit_compile="auto"`);
      - plain Keras, best settings: the same adapted feature space applied
        once to the same training rows, `from_tensor_slices(...).shuffle(n)
        .batch(1024).prefetch(2)` with autotuning off, `jit_compile=True`, the
        same network and metrics;
      - the same with the shuffled batches `cache()`d (every epoch replays
        epoch 1's order: a different, faster training run).
    Reported: total fit time including compile (and keras_mtl's encoding
    pass; the adapt, the same on both sides, is reported apart), steady-state
    epoch time (median of epochs 2..E), test AUCs.
(b) A hashed id column: a synthetic table of `--rows` rows (6 numeric
    columns, 2 categoricals, a `user_id` drawn from 1,000,000 values), one
    shared-bottom model reading every column and one with `user_id` dropped,
    steady-state epoch time ratio, and the peak resident memory of the
    hashed run (measured in a child process of its own); `mtl.optimizers.
    LazyAdam(1e-3)` on both (dense Adam updates all 2^20 rows every step).

    .venv/bin/python benchmarks/bench_tables.py [--parts ab] [--epochs 10] [--repeats 2] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from keras_mtl.data import census  # noqa: E402

UNITS = [128, 64]
NAMES = ["income", "never_married"]


class EpochTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def census_frame() -> pd.DataFrame:
    """Both census-income CSVs as one DataFrame, read as a user reads a CSV."""
    frames = [
        pd.read_csv(os.path.join(census.data_dir(), census.FILES[s]), header=None, names=census.COLUMNS,
                    skipinitialspace=True)
        for s in ("train", "test")
    ]
    df = pd.concat(frames, ignore_index=True)
    df["income"] = (df["income"].str.strip() == "50000+.").astype(float)
    df["never_married"] = (df["marital_status"] == "Never married").astype(float)
    return df.drop(columns=["instance_weight", "marital_status"])


def metrics():
    return [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]


def run_mtl(data, epochs):
    tasks = [mtl.tasks.Binary(n) for n in NAMES]
    model = mtl.models.shared_bottom(data.inputs, tasks, trunk=mtl.trunks.tabular(data.feature_space, UNITS))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    start = time.perf_counter()
    fast = data.encoded(model)
    timer = EpochTimes()
    model.fit(fast.train, epochs=epochs, verbose=0, callbacks=[timer])
    total = time.perf_counter() - start
    test = model.evaluate(fast.test, verbose=0, return_dict=True)
    return total, timer.times, [test[f"{n}_auc"] for n in NAMES]


def run_plain(data, epochs, cached):
    features, labels = data.columns["train"]
    start = time.perf_counter()
    encoded = data.feature_space(features).numpy()
    ds = tf.data.Dataset.from_tensor_slices((encoded, {n: labels[n] for n in NAMES}))
    ds = ds.shuffle(len(encoded), seed=0).batch(1024)
    options = tf.data.Options()
    options.autotune.enabled = False
    ds = (ds.cache() if cached else ds).prefetch(2).with_options(options)
    x = keras.Input((encoded.shape[1],))
    h = x
    for u in UNITS:
        h = keras.layers.Dense(u, activation="relu")(h)
    model = keras.Model(x, {n: keras.layers.Dense(1, activation="sigmoid", name=n)(h) for n in NAMES})
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss={n: "binary_crossentropy" for n in NAMES},
        metrics={n: metrics() for n in NAMES}, jit_compile=True,
    )
    timer = EpochTimes()
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[timer])
    total = time.perf_counter() - start
    test_x, test_y = data.columns["test"]
    pred = model.predict(data.feature_space(test_x).numpy(), batch_size=8192, verbose=0)
    aucs = [float(keras.metrics.AUC()(test_y[n], pred[n])) for n in NAMES]
    return total, timer.times, aucs


def part_a(epochs, repeats):
    df = census_frame()
    start = time.perf_counter()
    data = mtl.data.from_dataframe(df, [mtl.tasks.Binary(n) for n in NAMES], name="census_table", echo=None)
    load = time.perf_counter() - start
    n = len(data.columns["train"][1]["income"])
    print(f"from_dataframe: {len(df):,} rows, {len(data.column_types)} feature columns, {n:,} training rows, "
          f"{load:.1f} s (inference, split, adapt)")
    variants = {
        "keras_mtl from_dataframe (defaults)": lambda: run_mtl(data, epochs),
        "plain Keras best": lambda: run_plain(data, epochs, cached=False),
        "plain Keras best, cached batches": lambda: run_plain(data, epochs, cached=True),
    }
    results = {v: [] for v in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            results[name].append(fn())
            print(f"  {name}: {results[name][-1][0]:.1f} s", flush=True)
    base = statistics.median(r[0] for r in results["plain Keras best"])
    base_epoch = statistics.median(t for r in results["plain Keras best"] for t in r[1][1:])
    print(f"\n| setup | total {epochs}-epoch fit (s) | x plain best | steady epoch (s) | x plain best | test AUC income / never-married |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        total = statistics.median(r[0] for r in runs)
        epoch = statistics.median(t for r in runs for t in r[1][1:])
        aucs = np.mean([r[2] for r in runs], axis=0)
        print(f"| {name} | {total:.1f} | {total / base:.2f} | {epoch:.2f} | {epoch / base_epoch:.2f} | "
              f"{aucs[0]:.4f} / {aucs[1]:.4f} |")


# ------------------------------------------------------------------ part b
def id_table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(6)})
    df["region"] = rng.choice([f"r{i}" for i in range(12)], rows)
    df["device"] = rng.choice(["ios", "android", "web"], rows)
    df["user_id"] = rng.integers(0, 1_000_000, rows)
    user_bias = np.sin(df.user_id.to_numpy() * 0.001)
    df["click"] = (df.x0 + user_bias + rng.normal(size=rows) > 0).astype(float)
    df["buy"] = (df.x1 + 0.5 * df.x0 + rng.normal(size=rows) > 1).astype(float)
    return df


def run_hashed(rows: int, epochs: int, drop_id: bool) -> dict:
    df = id_table(rows)
    tasks = [mtl.tasks.Binary("click"), mtl.tasks.Binary("buy")]
    data = mtl.data.from_dataframe(df, tasks, features={"user_id": "drop"} if drop_id else None, echo=None)
    model = mtl.models.shared_bottom(data.inputs, tasks, trunk=mtl.trunks.tabular(data.feature_space, UNITS))
    # LazyAdam on both variants: what the README recommends for id columns.
    model.compile(optimizer=mtl.optimizers.LazyAdam(1e-3))
    fast = data.encoded(model)
    timer = EpochTimes()
    model.fit(fast.train, epochs=epochs, verbose=0, callbacks=[timer])
    t = data.column_types.get("user_id")
    return {
        "epoch": statistics.median(timer.times[1:]),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "id": None if t is None else {"num_bins": t.num_bins, "embedding_dim": t.embedding_dim, "distinct": t.cardinality},
        "params": model.count_params(),
    }


def part_b(rows, epochs, repeats):
    runs = {"with user_id (hashed)": [], "user_id dropped": []}
    for _ in range(repeats):
        for name in runs:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", "drop" if "dropped" in name else "hashed",
                 "--rows", str(rows), "--epochs", str(epochs)],
                capture_output=True, text=True, check=True,
            )
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"  {name}: {runs[name][-1]}", flush=True)
    base = statistics.median(r["epoch"] for r in runs["user_id dropped"])
    print(f"\n| model ({rows:,} rows) | steady epoch (s) | speed x id dropped | peak RSS (GiB) | parameters |")
    print("|---|---|---|---|---|")
    for name, rs in runs.items():
        epoch = statistics.median(r["epoch"] for r in rs)
        print(f"| {name} | {epoch:.2f} | {base / epoch:.2f} | {max(r['peak_rss_gib'] for r in rs):.2f} | "
              f"{rs[0]['params']:,} |")
    print(f"user_id column: {runs['with user_id (hashed)'][0]['id']}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--parts", default="ab")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--child", choices=["hashed", "drop"])
    args = p.parse_args()
    if args.child:
        print(json.dumps(run_hashed(args.rows, args.epochs, args.child == "drop")))
        return
    if "a" in args.parts:
        part_a(args.epochs, args.repeats)
    if "b" in args.parts:
        part_b(args.rows, min(args.epochs, 4), args.repeats)


if __name__ == "__main__":
    main()
