"""Training time with the default monitoring callbacks on vs off (census-income, shared_bottom).

Both sides train the same model (rebuilt from the same seed) on the same
data in one process, alternating on/off, so machine noise hits both. "On"
is `keras_mtl.callbacks.monitoring(log_dir, probe, model=model)` at its
default frequencies (what `keras-mtl train` uses); "off" is no callbacks.
"On + StopOnNonFiniteLoss" adds the NaN guard `keras-mtl train` attaches
beside the monitoring (and without it): a guard, not monitoring, shown
apart because its in-step weight record adds to the step's compile time.
As `keras-mtl train` does, both train on features encoded once before the
fit (`data.encoded(model)`, not timed: the same for both) with the step
XLA-compiled, and probe a batch of the encoded validation split. Each timed
fit includes everything the callbacks cost: tracing their probe functions,
writing the event files, the probes themselves.

    .venv/bin/python benchmarks/bench_monitoring.py [--epochs 5] [--repeats 3] [--shuffle] [--breakdown] [--profile]

`--breakdown` also times monitoring with parts left out, to show where the
overhead comes from (`--variants on guard-only` picks some; "off" is
always timed too). `--profile` adds the time spent inside each callback
during one more fit, which other load on the machine distorts less than the
ratios. "first step" is the fit's first train-function call: tracing and
XLA-compiling the step, where an in-step cost shows as compile time;
"outside the steps" is the fit's time outside every train- and
test-function call (Keras' loop, the callbacks' hooks); "accounted
overhead" is what those two add over "off" in the same repeat (median), as
a share of the median "off" fit: the part of the ratio not drowned by the
steps' own ±5% variation between identical fits. "CPU" is the process's
CPU time (all threads) during the fit: other load on the machine does not
add to it.
Prints Markdown; target: overhead <= 5%.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

import keras_mtl as mtl
from keras_mtl.callbacks import StopOnNonFiniteLoss, monitoring


def with_guard(callbacks, check_weights: bool = True):
    """The list plus StopOnNonFiniteLoss, as `keras-mtl train` attaches it beside the monitoring."""
    return list(callbacks) + [StopOnNonFiniteLoss(check_weights=check_weights)]


# id -> (description, (keyword arguments of monitoring(), an edit of its list)); None: no callbacks.
VARIANTS = {
    "off": ("off", None),
    "on": ("on (defaults)", ({}, list)),
    "on+guard": ("on + StopOnNonFiniteLoss (as `keras-mtl train`)", ({}, with_guard)),
    "no-probes": ("on, no probes (conflict_every=0, affinity_every=0)",
                  ({"conflict_every": 0, "affinity_every": 0}, list)),
    "guard-only": ("StopOnNonFiniteLoss only", ({}, lambda cbs: with_guard([]))),
    "guard-losses-only": ("StopOnNonFiniteLoss(check_weights=False) only",
                          ({}, lambda cbs: with_guard([], check_weights=False))),
}


def build(data):
    model = mtl.models.shared_bottom(
        data.inputs, data.tasks, trunk=mtl.trunks.tabular(data.feature_space, [128, 64])
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


HOOKS = ("set_model", "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
         "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end")


def time_hooks(callbacks, spent: dict) -> None:
    """Adds the wall time spent inside each callback's hooks to `spent[class name]`."""
    for cb in callbacks:
        for name in HOOKS:
            def timed(*args, _hook=getattr(cb, name), _key=type(cb).__name__, **kwargs):
                start = time.perf_counter()
                try:
                    return _hook(*args, **kwargs)
                finally:
                    spent[_key] = spent.get(_key, 0.0) + time.perf_counter() - start
            setattr(cb, name, timed)


def time_calls(model, calls: list) -> None:
    """Appends `(kind, seconds)` for every train- and test-function call of `model`'s fits to `calls`.

    The first train call traces and XLA-compiles the step, where an in-step
    cost shows up as compile time; the time of a fit outside all the calls
    is Keras' loop and the callbacks' hooks.
    """
    for kind in ("train_function", "test_function"):
        make = getattr(model, f"make_{kind}")

        def make_function(force=False, _make=make, _kind=kind):
            _make(force)  # Keras sets model.<kind> (and returns None)
            function = getattr(model, _kind)
            if getattr(function, "_timed", False):
                return function

            def timed(iterator):
                start = time.perf_counter()
                try:
                    return function(iterator)
                finally:
                    calls.append((_kind, time.perf_counter() - start))

            timed._timed = True
            setattr(model, _kind, timed)
            return timed

        setattr(model, f"make_{kind}", make_function)


def timed_fit(data, probe, variant, epochs: int, seed: int, spent: dict | None = None,
              calls: list | None = None, cpu_times: list | None = None) -> float:
    keras.utils.set_random_seed(seed)
    model = build(data)
    if calls is not None:
        time_calls(model, calls)
    # As `keras-mtl train` does: the preprocessing runs once, before training
    # (timed apart: it is the same for both sides).
    data = data.encoded(model)
    with tempfile.TemporaryDirectory() as logs:
        callbacks = None
        if variant is not None:
            kwargs, edit = variant
            callbacks = edit(monitoring(logs, probe, model=model, **kwargs))
            if spent is not None:
                time_hooks(callbacks, spent)
        # The previous fit's model and traced functions are garbage now: collect
        # them here, not at some point inside this fit's timing.
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=0,
                  shuffle=False, callbacks=callbacks)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="rows per census file (default: all)")
    parser.add_argument("--breakdown", action="store_true", help="also time parts of the monitoring")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="time these (default: off on on+guard)")
    parser.add_argument("--shuffle", action="store_true",
                        help="run each repeat's variants in a random (seeded) order, not always off first")
    parser.add_argument("--profile", action="store_true",
                        help="also time the inside of each default callback's hooks during one more fit")
    args = parser.parse_args()

    data = mtl.data.census_income(batch_size=1024, limit=args.limit)
    # As `keras-mtl train` does: a batch of the encoded validation split (the
    # encoding is a pure function of the adapted feature space, the same for every model).
    probe = next(iter(data.encoded(build(data)).validation))
    steps = len(data.train)
    variants = args.variants or (list(VARIANTS) if args.breakdown else ["off", "on", "on+guard"])
    variants = ["off"] + [v for v in variants if v != "off"]  # every ratio is to "off"
    timed_fit(data, probe, VARIANTS["on+guard"][1], 1, seed=0)  # warm-up: the first fit of a process pays one-off costs
    times = {v: [] for v in variants}
    firsts = {v: [] for v in variants}
    outside = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    order = random.Random(0)
    for r in range(args.repeats):
        # Every repeat runs every variant once; shuffled, a drift in the machine's
        # speed within a repeat does not always favour the same position.
        for v in order.sample(variants, len(variants)) if args.shuffle else variants:
            calls = []
            total = timed_fit(data, probe, VARIANTS[v][1], args.epochs, seed=r, calls=calls, cpu_times=cpu[v])
            times[v].append(total)
            firsts[v].append(calls[0][1])
            outside[v].append(total - sum(seconds for _, seconds in calls))
    off = statistics.median(times["off"])
    print(f"census-income shared_bottom [128, 64], batch 1024, {steps} steps/epoch, {args.epochs} epochs "
          f"with validation, median of {args.repeats} repeats, {'shuffled' if args.shuffle else 'alternating'} order\n")
    # On a shared machine other load only ever adds time, and it drifts between
    # repeats: "paired" divides each fit by the "off" fit of the same repeat (run
    # minutes apart at most), "fastest" the fastest fit of each by the fastest "off".
    print("| monitoring | fit s (median) | all runs (s) | ratio to off | paired ratio (median) | fastest runs ratio "
          "| first step s (median) | outside the steps s (median) | accounted overhead | CPU s (median) "
          "| CPU paired ratio (median) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for v in variants:
        med = statistics.median(times[v])
        runs = ", ".join(f"{t:.1f}" for t in times[v])
        paired = statistics.median(t / o for t, o in zip(times[v], times["off"]))
        # What a variant adds where it can add anything: compiling the step
        # (first call) and running between the steps (hooks, Keras' loop). The
        # steps' own times vary by ±0.5 s between identical fits here and are
        # left out; they are not slower with monitoring (see RESULTS.md).
        added = [f - fo + o - oo for f, o, fo, oo in zip(firsts[v], outside[v], firsts["off"], outside["off"])]
        print(f"| {VARIANTS[v][0]} | {med:.2f} | {runs} | {med / off:.3f} | {paired:.3f} "
              f"| {min(times[v]) / min(times['off']):.3f} | {statistics.median(firsts[v]):.2f} "
              f"| {statistics.median(outside[v]):.2f} | {statistics.median(added) / off:.1%} "
              f"| {statistics.median(cpu[v]):.2f} "
              f"| {statistics.median(c / o for c, o in zip(cpu[v], cpu['off'])):.3f} |")
    if args.profile:
        # Less sensitive to other load than the ratios above: only what runs inside the
        # hooks, not Keras reading each step's logs back or the flag the step computes.
        spent = {}
        total = timed_fit(data, probe, VARIANTS["on+guard"][1], args.epochs, seed=0, spent=spent)
        print(f"\nInside the callbacks' hooks (monitoring + StopOnNonFiniteLoss) during one more fit ({total:.2f} s):\n")
        print("| callback | s in its hooks | share of the fit |\n|---|---|---|")
        for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"| {name} | {seconds:.3f} | {seconds / total:.1%} |")


if __name__ == "__main__":
    main()
