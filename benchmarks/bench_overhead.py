"""Issue 22: what keras_mtl costs over plain Keras on the user's own tf.data pipeline.

Each case builds the same network twice from one seed: once as keras_mtl
builds it (a `MultiTaskModel` from a factory, `compile()` with the tasks'
losses and metrics), once as plain Keras, `keras.Model(inputs, outputs)`
over an identical copy of those layers, compiled with the same losses and
the same metric classes per output. Both read the same pipeline, which the
user wrote: `from_tensor_slices((features, labels)).batch(1024).cache()
.prefetch(2)` (cached, so that the pipeline's own cost, the same on both
sides, does not swamp the difference with its noise on 2 cores).
Cases:
  (a) numeric: a 6-feature table (160,000 rows), MLP 64-32, two Binary tasks;
  (b) census: census-income's raw columns (its train split), the model's own
      preprocessing (string lookups, normalisation), shared-bottom 128-64,
      two Binary tasks;
  (c) mmoe: the numeric table of (a), MMoE with 4 experts of 32 units;
  (d) mixed: a 6-feature table, one Multiclass (3 classes) and one
      Regression task (normalize=False on both sides: plain Keras has no
      target scaling), MLP 64-32.
Reported per case, in one process:
  - the steady epoch-time ratio keras_mtl / plain Keras, with defaults on
    both sides (keras_mtl's `steps_per_execution="auto"`, Keras' 1), with
    `jit_compile=True` on both (not for (b), whose string lookups XLA cannot
    compile), and with `steps_per_execution=--same-steps` on both (the
    step's own cost, without the Python loop around it): after a warm-up epoch,
    `--rounds` rounds of one epoch each, the two sides alternating (order
    flipped every round); the median of the per-round ratios and its
    quartiles, of wall time and of process CPU time; at those same steps
    also against plain Keras doing keras_mtl's job of masking missing
    labels (`masked_pipeline`: per-output sample weights, cleaned labels,
    weighted metrics; the data has no missing labels, the work is the same);
  - 10-epoch fit time, compile included, of fresh models (the median of
    `--fit-repeats`, the order reversed every repeat): keras_mtl with its
    defaults against plain Keras's best of its default, XLA and
    `steps_per_execution=32` settings, and against plain Keras at 32 steps
    doing the masking;
  - `--ops`: op counts of one training step: nodes in the traced graph
    (constants and placeholders left out) and op events the TF profiler
    records per step (after Grappler), over `--ops-steps` steps.

    .venv/bin/python benchmarks/bench_overhead.py [--cases abcd] [--rounds 9] [--fit-epochs 10] [--fit-repeats 3] [--ops]

Run against another checkout's keras_mtl (e.g. the previous version) with
`PYTHONPATH=/path/to/checkout`.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as mtl  # noqa: E402

BATCH = 1024
ROWS = 160_000
# What keras_mtl's steps_per_execution="auto" runs on one device (keras_mtl._execution.AUTO_STEPS),
# written out so that the benchmark also runs against versions without it.
STEPS = 32


def pipeline(features, labels):
    """The user's own pipeline, the same for both sides."""
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH).cache().prefetch(2)


def masked_pipeline(features, labels, tasks):
    """The same pipeline as a plain Keras user would write it for labels that may be missing.

    Each batch is `(features, labels, sample_weight)`: per output, the labels
    with missing markers (-1, NaN) set to 0 and a weight of 0 there, 1
    elsewhere (Keras' per-output sample weights). The cleaning runs before
    the cache, so once: the steps read finished weights.
    """
    def clean(x, y):
        masked = {t.name: t.mask_labels(tf.convert_to_tensor(y[t.label])) for t in tasks}
        return x, {k: v[0] for k, v in masked.items()}, {k: tf.cast(v[1], "float32") for k, v in masked.items()}

    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH).map(clean).cache().prefetch(2)


def numeric_table(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, 6)).astype("float32")
    return x, rng


def case_numeric(arch: str):
    x, rng = numeric_table()
    labels = {
        "click": (x[:, 0] + rng.normal(size=ROWS) > 0).astype("float32"),
        "buy": (x[:, 1] - x[:, 2] + rng.normal(size=ROWS) > 0.5).astype("float32"),
    }
    tasks = lambda: [mtl.tasks.Binary("click"), mtl.tasks.Binary("buy")]  # noqa: E731

    def build():
        inputs = keras.Input((6,), name="x")
        if arch == "mmoe":
            return mtl.models.mmoe(inputs, tasks(), num_experts=4, expert_units=[32])
        return mtl.models.shared_bottom(inputs, tasks(), trunk=mtl.trunks.mlp([64, 32]))

    return build, x, labels


def case_mixed():
    x, rng = numeric_table(1)
    scores = x[:, :3] + rng.normal(size=(ROWS, 3))
    labels = {
        "segment": np.argmax(scores, axis=1).astype("int64"),
        "spend": (2.0 * x[:, 3] - x[:, 4] + rng.normal(size=ROWS)).astype("float32"),
    }

    def build():
        tasks = [mtl.tasks.Multiclass("segment", 3), mtl.tasks.Regression("spend", normalize=False)]
        return mtl.models.shared_bottom(keras.Input((6,), name="x"), tasks, trunk=mtl.trunks.mlp([64, 32]))

    return build, x, labels


def case_census():
    data = mtl.data.census_income(batch_size=BATCH)
    features, labels = data.columns["train"]
    labels = {t.label: labels[t.label] for t in data.tasks}

    def build():
        tasks = [mtl.tasks.Binary("income"), mtl.tasks.Binary("never_married")]
        return mtl.models.shared_bottom(data.inputs, tasks, trunk=mtl.trunks.tabular(data.feature_space, [128, 64]))

    return build, features, labels


CASES = {
    "a": ("numeric", lambda: case_numeric("shared_bottom")),
    "b": ("census", case_census),
    "c": ("mmoe", lambda: case_numeric("mmoe")),
    "d": ("mixed", case_mixed),
}


def make_pair(build, jit: bool, steps: int | None = None, weighted: bool = False):
    """`(keras_mtl model, plain Keras model)`: one network, built twice from one seed.

    Each side's defaults, except `jit_compile=True` on both with `jit`, and
    `steps_per_execution=steps` on both when given. With `weighted`, the
    plain model's metrics read the sample weights (`masked_pipeline`).
    """
    same = {} if steps is None else {"steps_per_execution": steps}
    keras.utils.set_random_seed(0)
    ours = build()
    ours.compile(optimizer=keras.optimizers.Adam(1e-3), **({"jit_compile": True} if jit else {}), **same)
    keras.utils.set_random_seed(0)
    twin = build()  # only its layers are used: the plain model is built over them
    plain = keras.Model(twin.inputs, {t.name: twin.get_layer(t.name).output for t in twin.tasks})
    plain.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={t.name: t.loss for t in twin.tasks},
        **{"weighted_metrics" if weighted else "metrics": {t.name: t.metrics() for t in twin.tasks}},
        jit_compile=jit,
        **same,
    )
    return {"keras_mtl": ours, "plain": plain}


def steady_ratio(build, data, jit: bool, rounds: int, steps: int | None = None, plain_data=None) -> dict:
    """Epoch-time ratio keras_mtl / plain Keras; with `plain_data` (`masked_pipeline`), the
    plain model reads it, weighing its losses and metrics by its sample weights."""
    models = make_pair(build, jit, steps, weighted=plain_data is not None)
    inputs = {"keras_mtl": data, "plain": data if plain_data is None else plain_data}
    for name, m in models.items():
        m.fit(inputs[name], epochs=1, verbose=0)  # traces and compiles
    times, cpu = collections.defaultdict(list), collections.defaultdict(list)
    ratios, cpu_ratios = [], []
    for r in range(rounds):
        order = ["keras_mtl", "plain"] if r % 2 else ["plain", "keras_mtl"]
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            models[name].fit(inputs[name], epochs=1, verbose=0)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
        ratios.append(times["keras_mtl"][-1] / times["plain"][-1])
        cpu_ratios.append(cpu["keras_mtl"][-1] / cpu["plain"][-1])
    return {
        "steps_per_execution": {k: m.steps_per_execution for k, m in models.items()},
        "epoch_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "ratio": round(statistics.median(ratios), 3),
        "ratio_q1_q3": _quartiles(ratios),
        "cpu_ratio": round(statistics.median(cpu_ratios), 3),
        "cpu_ratio_q1_q3": _quartiles(cpu_ratios),
    }


def _quartiles(values):
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return [round(q1, 3), round(q3, 3)]


def fit_totals(build, data, epochs: int, repeats: int, xla: bool = True, plain_data=None) -> dict:
    """Total fit time, compile included, of fresh models (median of `repeats` runs, the
    settings' order reversed every repeat): keras_mtl's defaults against plain Keras' best
    of its default, `steps_per_execution=STEPS`, and those with XLA; with `plain_data`
    (`masked_pipeline`), also plain Keras at STEPS doing keras_mtl's job of masking the
    missing labels through sample weights."""
    # (label, side, jit, steps, the plain side reads `plain_data`)
    runs = [("keras_mtl", "keras_mtl", False, None, False), ("plain", "plain", False, None, False),
            ("plain_steps", "plain", False, STEPS, False)]
    if xla:
        runs += [("plain_xla", "plain", True, None, False), ("plain_xla_steps", "plain", True, STEPS, False)]
    settings = [label for label, *_ in runs if label != "keras_mtl"]  # plain Keras' settings for the best
    if plain_data is not None:
        runs += [("plain_masked_steps", "plain", False, STEPS, True)]
    times = collections.defaultdict(list)
    for r in range(repeats):
        for label, side, jit, steps, masked in runs if r % 2 == 0 else runs[::-1]:
            model = make_pair(build, jit, steps, weighted=masked)[side]
            start = time.perf_counter()
            model.fit(plain_data if masked else data, epochs=epochs, verbose=0)
            times[label].append(time.perf_counter() - start)
    totals = {k: round(statistics.median(v), 2) for k, v in times.items()}
    totals["ratio_to_plain_best"] = round(totals["keras_mtl"] / min(totals[k] for k in settings), 3)
    if plain_data is not None:
        totals["ratio_to_plain_masked"] = round(totals["keras_mtl"] / totals["plain_masked_steps"], 3)
    return totals


def op_counts(build, data, steps: int) -> dict:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    out = {}
    batch = next(iter(data))
    # One step per call on both sides: the counts are per step.
    for name, model in make_pair(build, False, 1).items():
        model.fit(data.take(2), epochs=1, verbose=0)
        graph = tf.function(model.train_step).get_concrete_function(batch).graph
        nodes = sum(op.type not in ("Const", "Placeholder", "NoOp") for op in graph.get_operations())
        iterator = iter(data.repeat())
        for _ in range(10):
            model.train_function(iterator)
        logdir = tempfile.mkdtemp(prefix=f"ops_{name}_")
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            model.train_function(iterator)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb") as f:
            space.ParseFromString(f.read())
        events = 0
        for plane in space.planes:
            if "host:CPU" not in plane.name:
                continue
            names = {k: v.name for k, v in plane.event_metadata.items()}
            # Kernel events are named "<node>:<op type>"; the rest are runtime scopes.
            events += sum(":" in names.get(e.metadata_id, "") for line in plane.lines for e in line.events)
        out[name] = {"graph_nodes": nodes, "executed_ops_per_step": round(events / steps, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="abcd")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--fit-epochs", type=int, default=10)
    parser.add_argument("--fit-repeats", type=int, default=3, help="fresh fits per setting; the median is reported")
    parser.add_argument("--no-jit", action="store_true", help="skip the jit_compile=True ratios")
    parser.add_argument("--same-steps", type=int, default=STEPS, help="steps_per_execution for the same-steps ratio (0: skip)")
    parser.add_argument("--ops", action="store_true")
    parser.add_argument("--ops-steps", type=int, default=200)
    args = parser.parse_args()
    print(f"keras_mtl from {os.path.dirname(mtl.__file__)}", flush=True)
    results = {}
    for key in args.cases:
        name, make = CASES[key]
        build, features, labels = make()
        data = pipeline(features, labels)
        masked = masked_pipeline(features, labels, build().tasks)
        row = {"default": steady_ratio(build, data, False, args.rounds)}
        # Raw string columns: XLA cannot compile the lookups, so both sides run the default step.
        if not args.no_jit and key != "b":
            row["jit"] = steady_ratio(build, data, True, args.rounds)
        if args.same_steps:
            # The step's own cost: both sides run the same number of steps per execution;
            # then against plain Keras masking the labels through sample weights.
            row["same_steps"] = steady_ratio(build, data, False, args.rounds, args.same_steps)
            row["same_steps_masked"] = steady_ratio(build, data, False, args.rounds, args.same_steps, plain_data=masked)
        if args.fit_epochs:
            row["fit_total_s"] = fit_totals(build, data, args.fit_epochs, args.fit_repeats, xla=key != "b", plain_data=masked)
        if args.ops:
            row["ops"] = op_counts(build, data, args.ops_steps)
        results[name] = row
        print(json.dumps({name: row}), flush=True)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
