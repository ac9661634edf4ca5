"""Training time with the default monitoring callbacks on vs off (census-income, shared_bottom).

Both sides train the same model (rebuilt from the same seed) on the same
data in one process, alternating on/off, so machine noise hits both. "On"
is `keras_mtl.callbacks.monitoring(log_dir, probe, model=model)` at its
default frequencies (what `keras-mtl train` uses); "off" is no callbacks.
Each timed fit includes everything the callbacks cost: tracing their probe
functions, writing the event files, the probes themselves.

    .venv/bin/python benchmarks/bench_monitoring.py [--epochs 5] [--repeats 3] [--breakdown]

`--breakdown` also times monitoring with parts left out, to show where the
overhead comes from (`--variants off on no-weight-check` picks some). Prints
Markdown; target: ratio on/off <= 1.05.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

import keras_mtl as mtl
from keras_mtl.callbacks import StopOnNonFiniteLoss, monitoring


def without_weight_check(callbacks):
    """The default set with StopOnNonFiniteLoss checking losses only, not every weight after every step."""
    return [StopOnNonFiniteLoss(check_weights=False) if isinstance(c, StopOnNonFiniteLoss) else c
            for c in callbacks]


# id -> (description, (keyword arguments of monitoring(), an edit of its list)); None: no callbacks.
VARIANTS = {
    "off": ("off", None),
    "on": ("on (defaults)", ({}, list)),
    "no-weight-check": ("on, StopOnNonFiniteLoss without its per-step weight check", ({}, without_weight_check)),
    "no-probes": ("on, no probes (conflict_every=0, affinity_every=0)",
                  ({"conflict_every": 0, "affinity_every": 0}, list)),
}


def build(data):
    model = mtl.models.shared_bottom(
        data.inputs, data.tasks, trunk=mtl.trunks.tabular(data.feature_space, [128, 64])
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def timed_fit(data, probe, variant, epochs: int, seed: int) -> float:
    keras.utils.set_random_seed(seed)
    model = build(data)
    with tempfile.TemporaryDirectory() as logs:
        callbacks = None
        if variant is not None:
            kwargs, edit = variant
            callbacks = edit(monitoring(logs, probe, model=model, **kwargs))
        start = time.perf_counter()
        model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=0,
                  shuffle=False, callbacks=callbacks)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="rows per census file (default: all)")
    parser.add_argument("--breakdown", action="store_true", help="also time parts of the monitoring")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="time these (default: off on)")
    args = parser.parse_args()

    data = mtl.data.census_income(batch_size=1024, limit=args.limit)
    probe = next(iter(data.validation))
    steps = len(data.train)
    variants = args.variants or (list(VARIANTS) if args.breakdown else ["off", "on"])
    timed_fit(data, probe, VARIANTS["on"][1], 1, seed=0)  # warm-up: the first fit of a process pays one-off costs
    times = {v: [] for v in variants}
    for r in range(args.repeats):
        for v in variants:  # alternating: every repeat runs every variant once
            times[v].append(timed_fit(data, probe, VARIANTS[v][1], args.epochs, seed=r))
    off = statistics.median(times["off"])
    print(f"census-income shared_bottom [128, 64], batch 1024, {steps} steps/epoch, {args.epochs} epochs "
          f"with validation, median of {args.repeats} alternating repeats\n")
    print("| monitoring | fit s (median) | all runs (s) | ratio to off |\n|---|---|---|---|")
    for v in variants:
        med = statistics.median(times[v])
        runs = ", ".join(f"{t:.1f}" for t in times[v])
        print(f"| {VARIANTS[v][0]} | {med:.2f} | {runs} | {med / off:.3f} |")


if __name__ == "__main__":
    main()
