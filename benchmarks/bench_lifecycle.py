"""Issue 26: a model's life after the first fit, on census-income: add a task, distil, compress.

The census-income files with a third task: `degree` (the person holds a
college degree: associate's or higher), read from the `education` column,
which is then dropped from the features of every model here. Every model
is `trunks.tabular(space, UNITS)` under shared-bottom, Adam 1e-3, batch
1024, `--epochs` epochs, the last epoch's weights (shared/ANCHORS.md's
setup), trained on the encoded columns; AUCs on the test file.

1. `old`: the 2-task model (income, never_married), trunk 128-64.
2. `degree alone`: `single_task` for degree with the same trunk: the bar a
   third task added to `old` should reach.
3. `extend, frozen`: `mtl.models.extend(old, [degree])`, trunk frozen: only
   the new head trains (old outputs bit-identical by construction).
4. `extend, LwF`: `extend(old, [degree], freeze="none")`, everything
   trained on data where only degree is labelled, the old tasks kept by
   distilling `old`'s outputs (`Distillation(old, tasks=[...],
   label_weight=0)`: Learning without Forgetting).
5. `extend, old labels`: the same with the old labels kept (and no
   teacher), for reference: what retraining all three costs.
6. Distillation into a student of half the width (64-32) from `old`:
   trained on labels only, and distilled (`Distillation(old, temperature,
   label_weight)` for both tasks, the teacher run in the step).
7. The same two students where only `--scarce` of the training rows keep
   their labels (`MultiTaskData.keep_labels`; the teacher was trained on
   all of them): the case distillation is for, a teacher's knowledge
   reaching examples without labels.

8. `old` exported for TF Serving as it is, with `quantize="int8"` (Keras'
   `Model.quantize`, weight-only) and with `quantize="float16"`: the size
   of `variables/`, the test AUC of the served signature, the largest
   difference from the float32 export's outputs, and the latency of one
   `serving_default` call at batch 1 and 256 (median of 200 calls, raw
   test rows in, loaded with `tf.saved_model.load` in this process).

    .venv/bin/python benchmarks/bench_lifecycle.py [--epochs 5] [--seed 0] [--limit N] [--temperature 2] [--label-weight 0.5] [--scarce 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from keras_mtl.data import census, splits as splits_lib  # noqa: E402
from keras_mtl.distillation import Distillation  # noqa: E402

DEGREES = ("Associates", "Bachelors", "Masters", "Prof school", "Doctorate")
OLD = ["income", "never_married"]


def auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(labels), np.asarray(scores).reshape(-1)))


def three_task_census(limit, seed):
    """Census with `degree` as a label and `education` out of the features."""
    columns = {}
    raw = splits_lib.with_validation(census.read_split("train", limit), census.read_split("test", limit), 0.1, seed)
    for split, (features, labels) in raw.items():
        education = features.pop("education")[:, 0]
        degree = np.array([e.startswith(DEGREES) for e in education], "float32")
        columns[split] = (features, {**labels, "degree": degree})
    FS = mtl.preprocessing.FeatureSpace
    space = FS(
        {c: FS.float_normalized() if c in census.NUMERIC else FS.string_categorical(num_oov_indices=1)
         for c in census.FEATURES if c != "education"},
        output_mode="concat",
    )
    space.adapt(columns["train"][0])
    tasks = [mtl.tasks.Binary(n) for n in OLD + ["degree"]]
    data = mtl.data.MultiTaskData.from_splits(
        "census3", dict(space.get_inputs()), tasks, columns, batch_size=1024, seed=seed, feature_space=space
    )
    return data


def only_new_labels(data):
    """The training split with the old tasks' labels missing: a dataset collected for the new task."""
    features, labels = data.columns["train"]
    labels = dict(labels, **{n: np.full_like(labels[n], -1.0) for n in OLD})
    columns = {**data.columns, "train": (features, labels)}
    return mtl.data.MultiTaskData.from_splits(
        data.name, data.inputs, [t for t in data.tasks if t.name == "degree"], columns,
        batch_size=data.batch_size, seed=data.seed, feature_space=data.feature_space,
    )


def train(model, data, epochs, **compile_kwargs):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_kwargs)
    fast = data.encoded(model)
    start = time.perf_counter()
    model.fit(fast.train, epochs=epochs, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    predictions = model.predict(fast.test, verbose=0)
    test_labels = data.columns["test"][1]
    return {name: auc(test_labels[name], predictions[name]) for name in model.output_names}, seconds


def served(model, data, folder):
    """Float32, int8 and float16 exports of `model`: size, test AUC, output difference, latency."""
    import tensorflow as tf

    from keras_mtl.export.quantization import variables_bytes

    features, labels = data.columns["test"]
    rows = {k: v.reshape(-1) for k, v in features.items()}
    n = len(next(iter(rows.values())))
    table, reference = {}, None
    for mode in (None, "int8", "float16"):
        path = mtl.export.export_saved_model(model, os.path.join(folder, mode or "float32"), quantize=mode)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        call = lambda lo, hi: serve(**{k: tf.constant(v[lo:hi]) for k, v in rows.items()})  # noqa: E731
        outputs = {name: [] for name in OLD}
        for lo in range(0, n, 8192):
            out = call(lo, min(n, lo + 8192))
            for name in OLD:
                outputs[name].append(out[name].numpy().reshape(-1))
        outputs = {k: np.concatenate(v) for k, v in outputs.items()}
        reference = reference or outputs
        latency = mtl.export.serving_latency(path, rows, (1, 256), calls=200)
        table[mode or "float32"] = {
            "variables_bytes": variables_bytes(path),
            "auc": {k: auc(labels[k], outputs[k]) for k in OLD},
            "max_abs_diff": max(float(np.abs(outputs[k] - reference[k]).max()) for k in OLD),
            "ms_batch_1": round(latency[1], 2),
            "ms_batch_256": round(latency[256], 2),
        }
        print(json.dumps({mode or "float32": table[mode or "float32"]}), flush=True)
    return table


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--label-weight", type=float, default=0.5)
    p.add_argument("--scarce", type=float, default=0.02)
    args = p.parse_args()
    data = three_task_census(args.limit, args.seed)
    tasks = {t.name: t for t in data.tasks}
    trunk = lambda units: mtl.trunks.tabular(data.feature_space, units)  # noqa: E731
    results = {}

    def run(name, build, train_data=data, **compile_kwargs):
        keras.utils.set_random_seed(args.seed)
        model = build()
        scores, seconds = train(model, train_data, args.epochs, **compile_kwargs)
        results[name] = {"auc": scores, "seconds": round(seconds, 1), "params": model.count_params()}
        print(json.dumps({name: results[name]}), flush=True)
        return model

    old = run("old", lambda: mtl.models.shared_bottom(
        data.inputs, [tasks[n] for n in OLD], trunk([128, 64]), unknown_labels="ignore"))
    run("degree alone", lambda: mtl.models.single_task(data.inputs, tasks["degree"], trunk([128, 64])))
    run("extend, frozen", lambda: mtl.models.extend(old, [tasks["degree"]]))
    run("extend, LwF", lambda: mtl.models.extend(old, [tasks["degree"]], freeze="none"), only_new_labels(data),
        distillation=Distillation(old, tasks=OLD, label_weight=0.0))
    run("extend, old labels", lambda: mtl.models.extend(old, [tasks["degree"]], freeze="none"))
    student = lambda: mtl.models.shared_bottom(  # noqa: E731
        data.inputs, [tasks[n] for n in OLD], trunk([64, 32]), unknown_labels="ignore")
    run("student, labels", student)
    run("student, distilled", student,
        distillation=Distillation(old, temperature=args.temperature, label_weight=args.label_weight))
    scarce = data.keep_labels({n: args.scarce for n in OLD})
    run(f"student, {args.scarce:.0%} labels", student, scarce)
    run(f"student, {args.scarce:.0%} labels, distilled", student, scarce,
        distillation=Distillation(old, temperature=args.temperature, label_weight=args.label_weight))

    with tempfile.TemporaryDirectory() as folder:
        exports = served(old, data, folder)

    print("\n| model | params | income AUC | never-married AUC | degree AUC | fit s |\n|---|---|---|---|---|---|")
    for name, r in results.items():
        cells = " | ".join(f"{r['auc'][t]:.4f}" if t in r["auc"] else "" for t in OLD + ["degree"])
        print(f"| {name} | {r['params']:,} | {cells} | {r['seconds']} |")
    base = exports["float32"]["variables_bytes"]
    print("\n| export | variables/ bytes | × float32 | income AUC | never-married AUC | max |diff| | ms, batch 1 | ms, batch 256 |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, e in exports.items():
        print(f"| {mode} | {e['variables_bytes']:,} | {e['variables_bytes'] / base:.2f} | {e['auc']['income']:.4f} | "
              f"{e['auc']['never_married']:.4f} | {e['max_abs_diff']:.4f} | {e['ms_batch_1']} | {e['ms_batch_256']} |")


if __name__ == "__main__":
    main()
