"""Foundation benchmark on census-income, everything in one process on the same data.

(a) per-step time: keras_mtl shared_bottom vs the same network in plain Keras
    (`compile(loss=..., loss_weights=...)`), same inputs and preprocessing;
(b) training K=2 and K=4 tasks with one shared-bottom model vs K single_task
    models in sequence (the point of sharing);
(c) test AUCs of single_task vs shared_bottom, 5 epochs (the ANCHORS setup).

    .venv/bin/python benchmarks/bench_foundation.py [--epochs 5] [--repeats 3]

Prints a Markdown report; copy it into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from keras_mtl.data import census, from_columns  # noqa: E402

UNITS = [128, 64]


def plain_keras(inputs, encoded, task_names):
    """The shared-bottom network written directly in Keras."""
    h = encoded
    for i, u in enumerate(UNITS):
        h = keras.layers.Dense(u, activation="relu", name=f"plain_dense_{i}")(h)
    outputs = {n: keras.layers.Dense(1, activation="sigmoid", name=n)(h) for n in task_names}
    model = keras.Model(dict(inputs), outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={n: "binary_crossentropy" for n in task_names},
        loss_weights={n: 1.0 for n in task_names},
        weighted_metrics={n: [keras.metrics.AUC(name="auc")] for n in task_names},
    )
    return model


def mtl_model(data, tasks, feature_space):
    model = mtl.models.shared_bottom(
        data_inputs(feature_space), tasks, trunk=mtl.trunks.tabular(feature_space, UNITS)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics={t.name: [keras.metrics.AUC(name="auc")] for t in tasks},
    )
    return model


def stl_model(feature_space, task):
    model = mtl.models.single_task(
        data_inputs(feature_space), task, trunk=mtl.trunks.tabular(feature_space, UNITS)
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics={task.name: [keras.metrics.AUC(name="auc")]})
    return model


def data_inputs(feature_space):
    return dict(feature_space.get_inputs())


def timed_fit(model, dataset, epochs=1):
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
    return time.perf_counter() - start


DEGREES = [
    "Bachelors degree(BA AB BS)", "Masters degree(MA MS MEng MEd MSW MBA)",
    "Doctorate degree(PhD EdD)", "Prof school degree (MD DDS DVM LLB JD)",
]


def extra_task_labels(features):
    """Two more census tasks: sex = female, education >= bachelor's degree."""
    return {
        "female": (features["sex"].ravel() == "Female").astype("float32"),
        "degree": np.isin(features["education"].ravel(), DEGREES).astype("float32"),
    }


def four_task_data(batch_size):
    """Census with the two extra tasks; their source columns are removed from
    the features so no task sees its own label."""
    features, labels = census.read_split("train")
    labels = {**labels, **extra_task_labels(features)}
    features = {k: v for k, v in features.items() if k not in ("sex", "education")}
    FS = keras.utils.FeatureSpace
    space = FS(
        {c: FS.float_normalized() if c in census.NUMERIC else FS.string_categorical(num_oov_indices=1)
         for c in sorted(features)},
        output_mode="concat",
    )
    space.adapt(from_columns(features, batch_size=4096))
    return space, from_columns(features, labels, batch_size=batch_size, shuffle=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)

    t0 = time.perf_counter()
    data = mtl.data.census_income(batch_size=args.batch_size)
    load_s = time.perf_counter() - t0
    n_train = len(data.columns["train"][1]["income"])
    names = [t.name for t in data.tasks]
    space = data.feature_space
    print(f"## census-income foundation benchmark\n\nload + FeatureSpace.adapt: {load_s:.1f} s; "
          f"{n_train} training rows, batch {args.batch_size}\n")

    # (a) per-step overhead, alternating runs to share any machine noise.
    ours = mtl_model(data, data.tasks, space)
    plain = plain_keras(space.get_inputs(), space.get_encoded_features(), names)
    timed_fit(ours, data.train)  # warm-up: tracing
    timed_fit(plain, data.train)
    t_ours, t_plain = [], []
    for _ in range(args.repeats):
        t_ours.append(timed_fit(ours, data.train))
        t_plain.append(timed_fit(plain, data.train))
    steps = int(np.ceil(n_train / args.batch_size))
    mo, mp = statistics.median(t_ours), statistics.median(t_plain)
    print("### (a) keras_mtl vs plain Keras, same network and data (median of "
          f"{args.repeats} epochs after warm-up)\n")
    print("| model | ms/step | examples/s |\n|---|---|---|")
    print(f"| plain Keras, compile(loss_weights=...) | {1000 * mp / steps:.2f} | {n_train / mp:,.0f} |")
    print(f"| keras_mtl shared_bottom | {1000 * mo / steps:.2f} | {n_train / mo:,.0f} |")
    print(f"\nratio keras_mtl / plain: **{mo / mp:.3f}** (target <= 1.05)\n")

    # (b) one shared model for K tasks vs K single-task models.
    print("### (b) K tasks: one shared_bottom vs K single_task models, one epoch each "
          f"(median of {args.repeats})\n")
    print("| K | shared: s/epoch | K single-task: s/epoch (sum) | speed-up | target |\n|---|---|---|---|---|")
    space4, train4 = four_task_data(args.batch_size)
    for k, (fs, ds, task_names) in {
        2: (space, data.train, names),
        4: (space4, train4, names + ["female", "degree"]),
    }.items():
        tasks = [mtl.tasks.Binary(n) for n in task_names]
        shared = mtl_model(None, tasks, fs)
        singles = [stl_model(fs, t) for t in tasks]
        timed_fit(shared, ds.take(3))
        for s in singles:
            timed_fit(s, ds.take(3))
        ts, tk = [], []
        for _ in range(args.repeats):
            ts.append(timed_fit(shared, ds))
            tk.append(sum(timed_fit(s, ds) for s in singles))
        a, b = statistics.median(ts), statistics.median(tk)
        print(f"| {k} | {a:.2f} | {b:.2f} | {b / a:.2f}x | >= {0.8 * k:.1f}x |")

    # (c) quality: single-task vs shared-bottom test AUC.
    print(f"\n### (c) test AUC after {args.epochs} epochs (best of nothing: last epoch)\n")
    print("| model | income AUC | never_married AUC | train examples/s |\n|---|---|---|---|")
    keras.utils.set_random_seed(0)
    shared = mtl_model(data, data.tasks, space)
    t = timed_fit(shared, data.train, args.epochs)
    res = shared.evaluate(data.test, verbose=0, return_dict=True)
    print(f"| shared_bottom | {res['income_auc']:.4f} | {res['never_married_auc']:.4f} | "
          f"{args.epochs * n_train / t:,.0f} |")
    aucs, speeds = {}, []
    for task in data.tasks:
        keras.utils.set_random_seed(0)
        single = stl_model(space, task)
        t = timed_fit(single, data.train, args.epochs)
        speeds.append(args.epochs * n_train / t)
        aucs[task.name] = single.evaluate(data.test, verbose=0, return_dict=True)[f"{task.name}_auc"]
    print(f"| single_task x2 | {aucs['income']:.4f} | {aucs['never_married']:.4f} | "
          f"{speeds[0]:,.0f} / {speeds[1]:,.0f} |")


if __name__ == "__main__":
    main()
