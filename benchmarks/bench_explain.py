"""Issue 28, per-task explanations on census-income.

Trains the main job's model (examples/census.yaml: income and never_married,
raw census columns encoded inside the model) as MMoE with 4 experts, for
`--epochs` epochs with `keras-mtl train`'s own code, then explains `--rows`
test rows for both tasks with `mtl.explain`, what `keras-mtl explain` runs (integrated gradients, 64
Gauss-Legendre nodes (the default), mean baseline). Reported: each task's top columns with
95% intervals, the shared / task-specific split, the task similarity, the
expert usage, and for 32, 64 and 128 nodes and for `gradient_x_input` (one
node) the completeness gap (max over rows of |sum of credits - (f(x) -
f(baseline))|) and the wall time of `mtl.explain` on the rows, first call
(tracing the attribution function) and second call, apart from loading the
model and reading the file.

    .venv/bin/python benchmarks/bench_explain.py [--rows 10000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()

    import pandas as pd

    import keras_mtl as mtl
    from keras_mtl import config as config_lib
    from keras_mtl import saving, training
    from keras_mtl.data.census import read_split

    work = tempfile.mkdtemp(prefix="bench_explain_")
    os.chdir(work)
    cfg = config_lib.load(os.path.join(ROOT, "examples", "census.yaml"), [
        "model.architecture=mmoe", "model.num_experts=4", "model.expert_units=[64]",
        f"train.epochs={args.epochs}", "train.verbose=0", "output.run=bench",
    ])
    start = time.perf_counter()
    result = training.run(cfg)
    trained = time.perf_counter() - start
    features, _ = read_split("test", limit=args.rows)
    rows = pd.DataFrame({k: v.reshape(len(v)) for k, v in features.items()})
    model = saving.load_model(result.checkpoint)
    timings, gaps = {}, {}
    for method, steps in (("integrated_gradients", 32), ("integrated_gradients", 64),
                          ("integrated_gradients", 128), ("gradient_x_input", 1)):
        name = f"{method}/{steps}"
        runs = []
        for _ in range(2):  # the first call traces the attribution function; the second reuses it
            start = time.perf_counter()
            e = mtl.explain(model, rows, method=method, steps=steps)
            runs.append(round(time.perf_counter() - start, 2))
        timings[name] = {"first_call": runs[0], "second_call": runs[1]}
        gaps[name] = {t: round(v, 4) for t, v in e.completeness_gap().items()}
        if name == "integrated_gradients/64":  # the default
            ig = e
    low, high = ig.interval()
    out = {"rows": len(rows), "epochs": args.epochs, "train_seconds": round(trained, 1),
           "test_metrics": result.test_metrics, "explain_seconds": timings,
           "completeness_gap": gaps, "top": {}, "similarity": ig.similarity().round(3).to_dict()}
    for task in ig.tasks:
        top = ig.top(task, 8)
        out["top"][task] = [
            {"column": c, "importance": round(v, 4), "low": round(float(low.loc[task, c]), 4),
             "high": round(float(high.loc[task, c]), 4), "share": round(float(ig.shares().loc[task, c]), 3)}
            for c, v in top.items()
        ]
    sharing = ig.sharing()
    out["shared"] = sharing.index[sharing["kind"] == "shared"].tolist()
    out["specific"] = {t: sharing.index[(sharing["kind"] == "specific") & (sharing["tasks"] == t)].tolist()
                       for t in ig.tasks}
    if ig.experts is not None:
        out["gate_weights"] = {g: [round(float(w), 3) for w in row]
                               for t in ig.experts.tables for g, row in zip(t.gates, t.weights)}
        out["collapsed"] = ig.experts.collapsed
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
