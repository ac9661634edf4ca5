"""Step time of every weighting method relative to `fixed`, same model, data and process.

Census-income features are encoded once (FeatureSpace, outside the step) so
that the step is the network alone, as in the LibMTL figures of
shared/ANCHORS.md. For K = 4 the extra tasks are female and bachelor's
degree or higher; their columns stay in the features (this run measures
time, not quality). Each method's epoch is timed alternately with a `fixed`
epoch, and the ratio is the median over `--repeats` pairs.

    .venv/bin/python benchmarks/bench_weighting.py [--repeats 3] [--tasks 2 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from keras_mtl.data.pipeline import pipeline_options  # noqa: E402
from bench_foundation import extra_task_labels  # noqa: E402

def encoded_data(batch_size):
    data = mtl.data.census_income(batch_size=batch_size)
    features, labels = data.columns["train"]
    labels = {**labels, **extra_task_labels(features)}
    space = data.feature_space
    encoded = mtl.data.from_columns(features, batch_size=8192).map(space).unbatch().batch(len(labels["income"]))
    matrix = next(iter(encoded)).numpy()
    ds = (
        tf.data.Dataset.from_tensor_slices((matrix, labels))
        .batch(batch_size)
        .cache()
        .prefetch(2)
        .with_options(pipeline_options())
    )
    ds.reduce(np.int64(0), lambda n, *_: n + 1)  # one pass fills the cache
    return matrix.shape[1], ds


def model_for(dim, names, weighting):
    model = mtl.models.shared_bottom(
        keras.Input((dim,)), [mtl.tasks.Binary(n) for n in names], trunk=mtl.trunks.mlp([128, 64]),
        unknown_labels="ignore",
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), weighting=weighting, metrics={n: [] for n in names})
    return model


def epoch_seconds(model, ds):
    start = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def variants():
    for name in mtl.weighting.available():
        if name == "fixed":
            continue
        for mode in getattr(mtl.weighting.get(name), "modes", (None,)):
            yield name, mode


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    dim, ds = encoded_data(args.batch_size)
    all_names = ["income", "never_married", "female", "degree"]
    results = {}
    for k in args.tasks:
        names = all_names[:k]
        fixed = model_for(dim, names, "fixed")
        epoch_seconds(fixed, ds)
        base = statistics.median(epoch_seconds(fixed, ds) for _ in range(args.repeats))
        results[(k, "fixed", None)] = (1.0, base)
        for name, mode in variants():
            kwargs = {"mode": mode} if mode else {}
            model = model_for(dim, names, mtl.weighting.get(name, **kwargs))
            epoch_seconds(model, ds)  # trace and warm up
            ratios, times = [], []
            for _ in range(args.repeats):
                t_fixed = epoch_seconds(fixed, ds)
                t = epoch_seconds(model, ds)
                ratios.append(t / t_fixed)
                times.append(t)
            results[(k, name, mode)] = (statistics.median(ratios), statistics.median(times))
            print(f"K={k} {name:12s} {str(mode):15s} {results[(k, name, mode)][0]:.2f}x", flush=True)

    steps = int(np.ceil(179571 / args.batch_size))
    print("\n| method | mode | " + " | ".join(f"K={k}: x fixed (ms/step)" for k in args.tasks) + " |")
    print("|---|---|" + "---|" * len(args.tasks))
    for key in [("fixed", None)] + list(variants()):
        cells = []
        for k in args.tasks:
            ratio, seconds = results[(k, *key)]
            cells.append(f"{ratio:.2f} ({1000 * seconds / steps:.2f})")
        print(f"| {key[0]} | {key[1] or '-'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
