"""Issue 10, "fast by default": keras_mtl's defaults vs plain Keras, on census-income, in one process.

(a) single_task, shared_bottom and mmoe, each trained three ways on the same
    rows, batch 1024, Adam 1e-3, `--epochs` epochs:
      - keras_mtl defaults: `data.encoded(model)` then `model.fit` (XLA chosen
        by `jit_compile="auto"`, keras_mtl's tf.data options);
      - plain Keras defaults: features encoded once with the same FeatureSpace
        (as Keras' FeatureSpace guide does), `Dataset.from_tensor_slices(...)
        .shuffle().batch().prefetch(AUTOTUNE)` with TensorFlow's default
        options, `compile()` defaults (no XLA on CPU);
      - plain Keras, best settings found: the same with autotuning off,
        `prefetch(2)` and `jit_compile=True`;
      - the same again with the shuffled batches `cache()`d: faster, but every
        epoch then replays epoch 1's order, a different training run from the
        others (which draw a new order each epoch).
    Reported: steady-state training examples/s (median over epochs 2..E),
    epoch-1 time including the encoding pass, and total time.
(b) PCGrad, MGDA and CAGrad steady-state epoch time (the second epoch of each
    fit) relative to `fixed` under keras_mtl's defaults, parameter and
    representation mode, shared_bottom and mmoe; and the train step alone
    (blocks of 40 batches already in memory, alternating with `fixed`).
(c) FeatureSpace adapt: Keras' own (as its guide feeds it: a dataset of
    32-row batches) vs keras_mtl's one-pass adapt, same feature spec.
(d) The main job (`keras-mtl train examples/census.yaml`) end to end, in a
    scratch folder.

    .venv/bin/python benchmarks/bench_speed.py [--parts abcd] [--epochs 5] [--repeats 2]
        [--skip-keras-adapt] [--modes parameters,representation]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from keras_mtl.data import census  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
UNITS = [128, 64]
EXPERTS, EXPERT_UNITS = 8, 64
TASKS = {"single_task": ["income"], "shared_bottom": ["income", "never_married"], "mmoe": ["income", "never_married"]}


class EpochTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times, self._start = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


# ------------------------------------------------------------------ keras_mtl
def mtl_model(data, arch, weighting="fixed"):
    tasks = [mtl.tasks.Binary(n, metrics=[]) for n in TASKS[arch]]
    if arch == "single_task":
        model = mtl.models.single_task(
            data.inputs, tasks[0], trunk=mtl.trunks.tabular(data.feature_space, UNITS)
        )
    elif arch == "shared_bottom":
        model = mtl.models.shared_bottom(data.inputs, tasks, trunk=mtl.trunks.tabular(data.feature_space, UNITS))
    else:
        model = mtl.models.mmoe(
            data.inputs, tasks, trunk=mtl.trunks.tabular(data.feature_space, []),
            num_experts=EXPERTS, expert_units=(EXPERT_UNITS,),
        )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), weighting=weighting)
    return model


def run_mtl(data, arch, epochs):
    model = mtl_model(data, arch)
    start = time.perf_counter()
    fast = data.encoded(model)
    encode = time.perf_counter() - start
    timer = EpochTimes()
    model.fit(fast.train, epochs=epochs, verbose=0, callbacks=[timer])
    return encode, timer.times, time.perf_counter() - start


# ---------------------------------------------------------------- plain Keras
def plain_model(dim, arch, jit):
    x = keras.Input((dim,))
    names = TASKS[arch]
    if arch == "mmoe":
        experts = keras.ops.stack(
            [keras.layers.Dense(EXPERT_UNITS, activation="relu")(x) for _ in range(EXPERTS)], axis=1
        )
        outputs = {}
        for n in names:
            gate = keras.layers.Dense(EXPERTS, activation="softmax")(x)
            mixed = keras.ops.sum(experts * keras.ops.expand_dims(gate, -1), axis=1)
            outputs[n] = keras.layers.Dense(1, activation="sigmoid", name=n)(mixed)
    else:
        h = x
        for u in UNITS:
            h = keras.layers.Dense(u, activation="relu")(h)
        outputs = {n: keras.layers.Dense(1, activation="sigmoid", name=n)(h) for n in names}
    model = keras.Model(x, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={n: "binary_crossentropy" for n in names},
        **({"jit_compile": True} if jit else {}),
    )
    return model


def run_plain(data, arch, epochs, best, frozen_order=False):
    """`best`: autotuning off, prefetch(2), XLA. `frozen_order`: also cache the
    shuffled batches, so every epoch replays epoch 1's order (faster, but a
    different training run: no reshuffling)."""
    features, labels = data.columns["train"]
    names = TASKS[arch]
    start = time.perf_counter()
    columns = {k: v if v.ndim > 1 else v[:, None] for k, v in features.items()}
    encoded = data.feature_space(columns).numpy()
    ds = tf.data.Dataset.from_tensor_slices((encoded, {n: labels[n].astype("float32") for n in names}))
    ds = ds.shuffle(len(encoded), seed=0).batch(1024)
    if best:
        options = tf.data.Options()
        options.autotune.enabled = False
        ds = (ds.cache() if frozen_order else ds).prefetch(2).with_options(options)
    else:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    model = plain_model(encoded.shape[1], arch, jit=best)
    timer = EpochTimes()
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[timer])
    return None, timer.times, time.perf_counter() - start, start


# ------------------------------------------------------------------ reporting
def part_a(data, epochs, repeats):
    n = len(data.columns["train"][1]["income"])
    variants = {
        "plain Keras defaults": lambda arch: run_plain(data, arch, epochs, best=False)[:3],
        "plain Keras best": lambda arch: run_plain(data, arch, epochs, best=True)[:3],
        "plain Keras best, frozen order": lambda arch: run_plain(data, arch, epochs, best=True, frozen_order=True)[:3],
        "keras_mtl defaults": lambda arch: run_mtl(data, arch, epochs),
    }
    rows = []
    for arch in TASKS:
        results = {v: [] for v in variants}
        for _ in range(repeats):  # alternate, so machine noise hits every variant
            for name, fn in variants.items():
                results[name].append(fn(arch))
                print(f"  {arch} {name}: {results[name][-1][2]:.1f} s", flush=True)
        rates = {}
        for name, runs in results.items():
            rates[name] = statistics.median(n / t for r in runs for t in r[1][1:])
            first = statistics.median(r[2] - sum(r[1][1:]) for r in runs)  # encoding + epoch 1
            total = statistics.median(r[2] for r in runs)
            rows.append((arch, name, rates[name], rates, first, total))
    print("\n| model | setup | train examples/s | x plain defaults | x plain best | encode + epoch 1 (s) | total (s) |")
    print("|---|---|---|---|---|---|---|")
    for arch, name, rate, rates, first, total in rows:
        print(f"| {arch} | {name} | {rate:,.0f} | {rate / rates['plain Keras defaults']:.2f} | "
              f"{rate / rates['plain Keras best']:.2f} | {first:.2f} | {total:.1f} |")


def steady_epoch_seconds(model, ds):
    """The second epoch of a two-epoch fit: steps only, no fit set-up or first-epoch work."""
    timer = EpochTimes()
    model.fit(ds, epochs=2, verbose=0, callbacks=[timer])
    return timer.times[1]


def step_seconds(model, batches) -> float:
    """Seconds per train step over `batches` already in memory: the step alone, no input pipeline."""
    function = model.train_function
    it = iter(batches)
    start = time.perf_counter()
    for _ in batches:
        logs = function(it)
    float(logs["loss"])  # wait for the last step
    return (time.perf_counter() - start) / len(batches)


def part_b(data, repeats, modes=("parameters", "representation")):
    print("\n| model | method | mode | x fixed, epochs (ms/step) | x fixed, steps alone (ms/step) |")
    print("|---|---|---|---|---|")
    for arch in ("shared_bottom", "mmoe"):
        fixed = mtl_model(data, arch)
        fast = data.encoded(fixed)
        steps = len(fast.train)
        batches = list(fast.train.take(40))
        steady_epoch_seconds(fixed, fast.train)
        # MMoE's trunk here is the feature encoding only (no weights), so the
        # experts reach the tasks only through their stacked outputs, the
        # representation: both modes apply to both models.
        for method in ("pcgrad", "mgda", "cagrad"):
            for mode in modes:
                model = mtl_model(data, arch, mtl.weighting.get(method, mode=mode))
                steady_epoch_seconds(model, fast.train)  # compile, warm up
                ratios, times = [], []
                for _ in range(repeats):  # alternate, so machine noise hits both
                    t_fixed = steady_epoch_seconds(fixed, fast.train)
                    t = steady_epoch_seconds(model, fast.train)
                    ratios.append(t / t_fixed)
                    times.append(t)
                ratio = statistics.median(ratios)
                # The steps alone, in alternating blocks of 40 (no epoch boundaries,
                # no batch gathering): what the method adds to the step itself.
                step_ratios, step_times = [], []
                for _ in range(5 * repeats):
                    t_fixed = step_seconds(fixed, batches)
                    t = step_seconds(model, batches)
                    step_ratios.append(t / t_fixed)
                    step_times.append(t)
                print(f"| {arch} | {method} | {mode} | {ratio:.2f} ({1000 * statistics.median(times) / steps:.2f}) "
                      f"| {statistics.median(step_ratios):.2f} ({1000 * statistics.median(step_times):.2f}) |", flush=True)


def part_c(data, skip_keras):
    features, _ = data.columns["train"]
    start = time.perf_counter()
    ours = census.feature_space()
    ours.adapt(features)
    t_ours = time.perf_counter() - start
    print(f"\nkeras_mtl FeatureSpace.adapt: {t_ours:.2f} s")
    if skip_keras:
        return
    keras_space = keras.utils.FeatureSpace.from_config(census.feature_space().get_config())
    ds = tf.data.Dataset.from_tensor_slices(
        {k: v if v.ndim > 1 else v[:, None] for k, v in features.items()}
    ).batch(32)
    start = time.perf_counter()
    keras_space.adapt(ds)
    t_keras = time.perf_counter() - start
    x = {k: v[:2048] if v.ndim > 1 else v[:2048, None] for k, v in features.items()}
    same = np.abs(keras_space(x).numpy() - ours(x).numpy()).max()
    print(f"keras.utils.FeatureSpace.adapt (32-row batches): {t_keras:.2f} s; "
          f"speed-up {t_keras / t_ours:.1f}x; max |encoded difference| {same:.2e}")


def part_d():
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        out = subprocess.run(
            [str(Path(sys.executable).parent / "keras-mtl"), "train", str(ROOT / "examples/census.yaml"),
             "--set", "train.verbose=0"],
            cwd=scratch, capture_output=True, text=True, check=True,
        ).stdout
        wall = time.perf_counter() - start
    done = re.search(r"Done in (\d+) s", out)
    print(f"\nmain job (keras-mtl train examples/census.yaml): {wall:.1f} s wall "
          f"(the CLI reports {done.group(1) if done else '?'} s: load, encode, train, test, export, verify)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", default="abcd")
    parser.add_argument("--skip-keras-adapt", action="store_true")
    parser.add_argument("--modes", default="parameters,representation", help="part b's gradient modes")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    data = mtl.data.census_income(batch_size=1024)
    if "a" in args.parts:
        part_a(data, args.epochs, args.repeats)
    if "b" in args.parts:
        part_b(data, max(args.repeats, 3), tuple(args.modes.split(",")))
    if "c" in args.parts:
        part_c(data, args.skip_keras_adapt)
    if "d" in args.parts:
        part_d()


if __name__ == "__main__":
    main()
