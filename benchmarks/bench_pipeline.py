"""What keras_mtl's shuffled in-memory pipeline costs per batch and per epoch, against a cached one.

The encoded census-income train split (179,571 rows: one 535-wide float32
feature matrix and two label columns; with `--raw`, its 39 raw feature
columns instead), batch 1024, shuffled, read the way
Keras' `fit` reads it: a new iterator every epoch, batches pulled inside a
`tf.function`. Variants, alternated in one process:
  - keras_mtl: `from_columns(..., shuffle=True)` as it is in this checkout;
  - `--against REV`: `keras_mtl/data/pipeline.py` as it was at git revision
    REV (e.g. HEAD, before uncommitted changes);
  - plain Keras best: `from_tensor_slices(...).shuffle(n).batch(1024).cache()`,
    which replays its first epoch's order ever after (bench_speed.py part a).
Reported (medians over `--repeats` rounds of `--epochs` epochs each): the
wait for a new epoch's first batch (iterator creation included; Keras
creates an iterator at the end of each epoch too, so a training epoch pays
the iterator part twice), and the CPU time and wall time per batch over the
rest of the epoch.

    .venv/bin/python benchmarks/bench_pipeline.py [--repeats 7] [--epochs 2] [--against HEAD] [--raw]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from keras_mtl.callbacks import SetEpoch  # noqa: E402
from keras_mtl.data import from_columns  # noqa: E402
from keras_mtl._encoding import encode_columns  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1024


def train_split(raw: bool):
    """The train split's columns: raw, or as `data.encoded(model)` batches them for shared_bottom."""
    data = mtl.data.census_income(batch_size=BATCH)
    features, labels = data.columns["train"]
    if raw:
        return features, labels
    model = mtl.models.shared_bottom(
        data.inputs, [mtl.tasks.Binary("income"), mtl.tasks.Binary("never_married")],
        trunk=mtl.trunks.tabular(data.feature_space, [128, 64]),
    )
    return encode_columns(model.preprocessing.encoder, features), labels


def pipeline_at(revision: str):
    """keras_mtl/data/pipeline.py as it was at `revision`, imported as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:keras_mtl/data/pipeline.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "pipeline_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pipeline_at_revision", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cached(features, labels):
    n = len(next(iter(labels.values())))
    options = tf.data.Options()
    options.autotune.enabled = False
    ds = tf.data.Dataset.from_tensor_slices((features, labels)).shuffle(n, seed=0).batch(BATCH)
    ds = ds.cache().prefetch(2).with_options(options)
    ds.reduce(0, lambda count, _: count + 1)  # the first epoch fills the cache
    return ds


def reader(ds):
    """One epoch read as Keras reads it: a new iterator, batches pulled inside a tf.function."""

    @tf.function
    def rest(iterator):
        count = tf.constant(0, tf.int64)
        for _ in iterator:
            count += 1
        return count

    def read(epoch):
        if hasattr(ds, "_keras_mtl_epoch"):
            SetEpoch(ds).on_epoch_begin(epoch)
        start = time.perf_counter()
        iterator = iter(ds)
        next(iterator)
        wall, cpu = time.perf_counter(), time.process_time()
        batches = int(rest(iterator))
        return wall - start, (time.process_time() - cpu) / batches, (time.perf_counter() - wall) / batches

    return read


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--against", help="a git revision whose pipeline.py to compare with")
    parser.add_argument("--raw", action="store_true", help="the raw columns (39 features) instead of the encoded ones")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    features, labels = train_split(args.raw)
    variants = {"keras_mtl": from_columns(features, labels, batch_size=BATCH, shuffle=True)}
    if args.against:
        old = pipeline_at(args.against)
        variants[f"keras_mtl at {args.against}"] = old.from_columns(features, labels, batch_size=BATCH, shuffle=True)
    variants["plain Keras best (cached)"] = cached(features, labels)
    readers = {name: reader(ds) for name, ds in variants.items()}
    for read in readers.values():
        read(0)  # trace the reading function
    results = {name: [] for name in readers}
    for round_ in range(args.repeats):
        for name, read in readers.items():  # alternate, so machine noise hits every variant
            for epoch in range(args.epochs):
                results[name].append(read(round_ * args.epochs + epoch))
    print(f"\n{'raw' if args.raw else 'encoded'}: {len(features)} feature and {len(labels)} label columns, "
          f"{sum(map(len, labels.values())) // len(labels):,} rows, batch {BATCH}; "
          f"medians of {args.repeats} x {args.epochs} epochs; load average {os.getloadavg()[0]:.1f}")
    print("| pipeline | new epoch's first batch (ms) | then CPU per batch (ms) | then wall per batch (ms) |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        first, cpu, wall = (statistics.median(r[i] for r in runs) * 1e3 for i in range(3))
        print(f"| {name} | {first:.2f} | {cpu:.3f} | {wall:.3f} |")


if __name__ == "__main__":
    main()
