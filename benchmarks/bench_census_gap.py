"""Issue 23: why keras_mtl's default census-income run scores below the same network in plain Keras.

Controlled runs: (a) the plain Keras reference of shared/ANCHORS.md (numpy
one-hot + standardisation with vocabularies and statistics from the whole
train CSV, `model.fit` on arrays with Keras' own per-epoch shuffle), (b)
keras_mtl's default (`examples/census.yaml` as `keras-mtl compare` trains
it), and variants that change one factor of (a) at a time. Every run is
scored several ways, so the evaluation choices are controlled too: the last
epoch's or the lowest-validation-loss epoch's weights, and test AUC from
`keras.metrics.AUC` (200 thresholds, what keras_mtl reports), the exact
rank AUC (sklearn), or `keras.metrics.AUC` with 2,000 / 20,000 thresholds.
Finding (benchmarks/RESULTS.md, issue 23): no training factor moves income
AUC beyond ~0.0004; the 200-threshold AUC reads 0.0015-0.0024 low on income
(up to 0.006 in the label-scarce runs), by a run-dependent amount.

All runs but `tail_split` use keras_mtl's seeded 90/10 split of the train
CSV (the rows `mtl.data.census_income(seed=s)` trains on); `tail_split`
checks what a file-order split does to the reference.

    .venv/bin/python benchmarks/bench_census_gap.py [--seeds 0 1 2] [--variants plain fs_arrays ...]

`--compare [KEY=VALUE ...]` instead runs `mtl.compare` on examples/census.yaml
with Binary's AUC at `--thresholds` (2,000) thresholds, emulating the
recommended change to `keras_mtl.tasks.Binary.default_metrics`:

    .venv/bin/python benchmarks/bench_census_gap.py --compare data.keep_labels.income=0.02
"""

from __future__ import annotations

import argparse
import json
import math
import time

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

import keras_mtl as mtl
from keras_mtl import training
from keras_mtl.data import census
from keras_mtl.data.pipeline import from_columns
from keras_mtl.data.splits import holdout

TASKS = ("income", "never_married")
EPOCHS, BATCH = 5, 1024


# ---------------------------------------------------------------- encodings
def stats_from(features: dict, rows=None) -> tuple[dict, dict]:
    """Means/stds of the numeric columns and sorted vocabularies of the others, over `rows` (all for None)."""
    pick = (lambda v: v) if rows is None else (lambda v: v[rows])
    moments = {c: (float(pick(features[c]).mean()), float(pick(features[c]).std())) for c in census.NUMERIC}
    vocab = {c: np.unique(pick(features[c]).ravel().astype(str)) for c in census.CATEGORICAL}
    return moments, vocab


def encode(features: dict, moments: dict, vocab: dict, oov: bool) -> np.ndarray:
    """7 standardised numbers + one-hot categories (an extra all-other column first with `oov`)."""
    parts = [((features[c].ravel() - m) / s).astype(np.float32)[:, None] for c, (m, s) in moments.items()]
    for c, words in vocab.items():
        values = features[c].ravel().astype(str)
        idx = np.searchsorted(words, values)
        idx = np.minimum(idx, len(words) - 1)
        known = words[idx] == values
        width = len(words) + int(oov)
        onehot = np.zeros((len(values), width), np.float32)
        rows = np.nonzero(known)[0]
        onehot[rows, idx[rows] + int(oov)] = 1.0
        if oov:
            onehot[~known, 0] = 1.0
        parts.append(onehot)
    return np.concatenate(parts, axis=1)


def feature_space_arrays(space, features: dict, chunk: int = 20000) -> np.ndarray:
    """keras_mtl's adapted FeatureSpace (concat mode) applied to raw columns: the vector its trunk reads."""
    n = len(next(iter(features.values())))
    out = []
    for i in range(0, n, chunk):
        out.append(np.asarray(space({k: v[i:i + chunk] for k, v in features.items()})))
    return np.concatenate(out).astype(np.float32)


# ---------------------------------------------------------------- models
def plain_model(dim: int, jit: bool = False) -> keras.Model:
    """ANCHORS' plain Keras shared-bottom 128-64, two sigmoid heads, summed BCE."""
    x = keras.Input((dim,), name="x")
    h = keras.layers.Dense(128, activation="relu")(x)
    h = keras.layers.Dense(64, activation="relu")(h)
    outs = {t: keras.layers.Dense(1, activation="sigmoid", name=t)(h) for t in TASKS}
    model = keras.Model(x, outs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={t: "binary_crossentropy" for t in TASKS},
        jit_compile=jit,
    )
    return model


def mtl_model_on_arrays(dim: int) -> keras.Model:
    """keras_mtl's shared_bottom (its loss, train step and compile defaults) on a pre-encoded vector."""
    inputs = {"x": keras.Input((dim,), name="x")}
    model = mtl.models.shared_bottom(inputs, [mtl.tasks.Binary(t) for t in TASKS], trunk=mtl.trunks.mlp([128, 64]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


class BestAndLast(keras.callbacks.Callback):
    """Remembers the lowest-val_loss epoch's weights (keras_mtl's checkpoint choice)."""

    def on_train_begin(self, logs=None):
        self.best, self.weights, self.epoch = math.inf, None, -1

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss", math.nan)
        if loss < self.best:
            self.best, self.weights, self.epoch = loss, self.model.get_weights(), epoch


def scores(model, test_x, test_y: dict) -> dict:
    """{task: (Keras AUC at 200 thresholds, exact AUC, Keras AUC at 2,000, at 20,000)} on the test rows.

    The last two emulate a larger `num_thresholds` in keras_mtl's Binary metrics.
    """
    pred = model.predict(test_x, batch_size=8192, verbose=0)
    out = {}
    for t in TASKS:
        p = np.asarray(pred[t]).reshape(-1)
        keras_aucs = []
        for thresholds in (200, 2000, 20000):
            k = keras.metrics.AUC(num_thresholds=thresholds)
            k.update_state(test_y[t], p)
            keras_aucs.append(float(k.result()))
        out[t] = (keras_aucs[0], float(roc_auc_score(test_y[t], p)), keras_aucs[1], keras_aucs[2])
    return out


def fit_and_score(model, train, val, test_x, test_y, extra=(), epochs=EPOCHS, **fit_kwargs) -> dict:
    """Trains `epochs` epochs; scores the last epoch's and the best epoch's weights."""
    cb = BestAndLast()
    t0 = time.time()
    model.fit(*train, validation_data=val, epochs=epochs, callbacks=[cb, *extra], verbose=0, **fit_kwargs)
    seconds = time.time() - t0
    last = scores(model, test_x, test_y)
    model.set_weights(cb.weights)
    best = scores(model, test_x, test_y)
    return {"last": last, "best": best, "best_epoch": cb.epoch, "fit_s": seconds}


# ---------------------------------------------------------------- runs
def run_arrays(variant, seed, X, Xt, y, yt, kept, held):
    """One variant on a pre-encoded matrix (`X` train CSV rows, `Xt` test rows)."""
    keras.utils.set_random_seed(seed)
    ytr = {t: y[t][kept] for t in TASKS}
    yva = {t: y[t][held] for t in TASKS}
    if variant.startswith("mtl_model"):
        model = mtl_model_on_arrays(X.shape[1])
        return fit_and_score(
            model, ({"x": X[kept]}, ytr), ({"x": X[held]}, yva), {"x": Xt}, yt, batch_size=BATCH, shuffle=True
        )
    model = plain_model(X.shape[1], jit=variant == "xla")
    if variant in ("tfdata_rows", "batch_shuffle"):
        ds = tf.data.Dataset.from_tensor_slices((X[kept], ytr))
        if variant == "tfdata_rows":  # rows reshuffled every epoch through a full-size buffer
            ds = ds.shuffle(len(kept), seed=seed, reshuffle_each_iteration=True).batch(BATCH)
        else:  # the description of the reference: fixed batches, cached, their order shuffled each epoch
            ds = ds.batch(BATCH).cache().shuffle(len(kept) // BATCH + 1, seed=seed, reshuffle_each_iteration=True)
        return fit_and_score(model, (ds,), (X[held], yva), Xt, yt)
    if variant == "mtl_shuffle":
        # keras_mtl's pipeline: a seeded permutation per epoch, each batch one gather.
        train = from_columns({"x": X[kept]}, ytr, batch_size=BATCH, shuffle=True, seed=seed)
        val = from_columns({"x": X[held]}, yva, batch_size=BATCH)
        # from_columns gives dict features; the plain model's one input is named "x".
        return fit_and_score(model, (train,), val, {"x": Xt}, yt, extra=[mtl.callbacks.SetEpoch(train)])
    return fit_and_score(model, (X[kept], ytr), (X[held], yva), Xt, yt, batch_size=BATCH, shuffle=True)


def run_default(seed, limit=None):
    """keras_mtl's default as `keras-mtl compare`/`train` builds it (raw columns, FeatureSpace, encoded once)."""
    cfg = mtl.config.load("examples/census.yaml", [f"train.seed={seed}"] + ([f"data.limit={limit}"] if limit else []))
    data, tasks = training.load_data(cfg, echo=lambda line: None)
    keras.utils.set_random_seed(seed)
    model = training.build_model(cfg, data, tasks)
    fit_data = training.fitting_data(cfg, data, model)
    # The test split in file order (not shuffled), encoded like the training batches.
    result = fit_and_score(model, (fit_data.train,), fit_data.validation, fit_data.test, data.columns["test"][1],
                           shuffle=False)
    return result, data


VARIANTS = [
    "plain",          # (a) reference
    "split_stats",    # vocab + mean/std from the 90% train split instead of the whole train CSV
    "oov",            # + one OOV column per categorical feature
    "split_oov",      # both: what FeatureSpace does, in numpy
    "fs_arrays",      # keras_mtl's FeatureSpace output fed to the plain network
    "mtl_shuffle",    # keras_mtl's per-epoch seeded permutation pipeline instead of fit(shuffle=True)
    "xla",            # jit_compile=True
    "tfdata_rows",    # tf.data shuffle of rows (full buffer) instead of fit(shuffle=True)
    "batch_shuffle",  # fixed batches cached, only their order shuffled each epoch
    "tail_split",     # the plain reference on a file-order 90/10 split instead of keras_mtl's seeded one
    "mtl_model",      # keras_mtl's shared_bottom model/loss/compile on the plain arrays
    "mtl_model_fs",   # keras_mtl's model on FeatureSpace arrays (default minus raw-column pipeline)
    "default",        # (b) keras_mtl default
]


def compare_with_thresholds(overrides, seeds: int, thresholds: int, output: str, variants=None,
                            config: str = "examples/census.yaml", suggest_groups: bool = False) -> None:
    """`keras-mtl compare CONFIG --set ...` with Binary's AUC at `thresholds` thresholds.

    Emulates the recommended library change (keras_mtl/tasks.py,
    `Binary.default_metrics`: `keras.metrics.AUC(name="auc", num_thresholds=2000)`)
    without editing the library: the method is replaced in this process only.
    """
    def default_metrics(self):
        return [keras.metrics.AUC(name="auc", num_thresholds=thresholds), keras.metrics.BinaryAccuracy(name="accuracy")]

    mtl.tasks.Binary.default_metrics = default_metrics
    cfg = mtl.config.load(config, list(overrides))
    result = mtl.compare(cfg, variants=variants, seeds=seeds, output_dir=output, suggest_groups=suggest_groups)
    print(result.table())
    print(f"Done in {result.seconds:.0f} s.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs="*", metavar="KEY=VALUE", default=None,
                        help="instead: run compare on --compare-config (these --set overrides) "
                             "with Binary AUC at --thresholds thresholds")
    parser.add_argument("--thresholds", type=int, default=2000, help="with --compare: Binary AUC thresholds")
    parser.add_argument("--compare-output", default="benchmarks/out/census_gap_compare", help="with --compare: output folder")
    parser.add_argument("--compare-config", default="examples/census.yaml", help="with --compare: the run config")
    parser.add_argument("--suggest-groups", action="store_true", help="with --compare: as compare's option")
    parser.add_argument("--compare-variants", nargs="*", default=None, metavar="ARCH/WEIGHTING",
                        help="multi-task settings to compare (default: the config's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--out", default=None, help="write every run's scores to this JSON file")
    parser.add_argument("--limit", type=int, default=None, help="first rows of each file only (smoke test)")
    args = parser.parse_args()
    if args.compare is not None:
        variants = [tuple(v.split("/")) for v in args.compare_variants] if args.compare_variants else None
        compare_with_thresholds(args.compare, len(args.seeds), args.thresholds, args.compare_output, variants,
                                args.compare_config, args.suggest_groups)
        return

    t0 = time.time()
    train_f, train_y = census.read_split("train", args.limit)
    test_f, test_y = census.read_split("test", args.limit)
    whole = stats_from(train_f)
    X_plain, Xt_plain = encode(train_f, *whole, oov=False), encode(test_f, *whole, oov=False)
    X_oov = Xt_oov = None
    if "oov" in args.variants:
        X_oov, Xt_oov = encode(train_f, *whole, oov=True), encode(test_f, *whole, oov=True)
    print(f"read + encode {time.time() - t0:.0f}s; plain width {X_plain.shape[1]}", flush=True)
    n = len(train_y["income"])
    results = []
    for seed in args.seeds:
        kept, held = holdout(n, 0.1, seed)  # census_income's own split of this seed
        arrays = {v: (X_plain, Xt_plain) for v in ("plain", "mtl_shuffle", "xla", "mtl_model", "tfdata_rows", "batch_shuffle")}
        if X_oov is not None:
            arrays["oov"] = (X_oov, Xt_oov)
        if {"split_stats", "split_oov"} & set(args.variants):
            part = stats_from(train_f, kept)
            arrays["split_stats"] = (encode(train_f, *part, oov=False), encode(test_f, *part, oov=False))
            arrays["split_oov"] = (encode(train_f, *part, oov=True), encode(test_f, *part, oov=True))
        data = None
        for variant in args.variants:
            t1 = time.time()
            if variant == "default":
                r, data = run_default(seed, args.limit)
            elif variant in ("fs_arrays", "mtl_model_fs"):
                if "fs" not in arrays:
                    if data is None:
                        cfg = mtl.config.load("examples/census.yaml", [f"train.seed={seed}"]
                                              + ([f"data.limit={args.limit}"] if args.limit else []))
                        data, _ = training.load_data(cfg, echo=lambda line: None)
                    arrays["fs"] = (feature_space_arrays(data.feature_space, train_f),
                                    feature_space_arrays(data.feature_space, test_f))
                X, Xt = arrays["fs"]
                r = run_arrays("mtl_model" if variant == "mtl_model_fs" else "plain", seed, X, Xt, train_y, test_y, kept, held)
            elif variant == "tail_split":
                # A plain script's likely split: the file's first 90% train, last 10% validation (every seed).
                cut = n - int(round(0.1 * n))
                r = run_arrays("plain", seed, X_plain, Xt_plain, train_y, test_y, np.arange(cut), np.arange(cut, n))
            else:
                X, Xt = arrays[variant]
                r = run_arrays(variant, seed, X, Xt, train_y, test_y, kept, held)
            r.update(variant=variant, seed=seed)
            results.append(r)
            keras.backend.clear_session()
            print(json.dumps({"variant": variant, "seed": seed, "best_epoch": r["best_epoch"],
                              "last_exact": [round(r["last"][t][1], 4) for t in TASKS],
                              "best_exact": [round(r["best"][t][1], 4) for t in TASKS],
                              "last_keras": [round(r["last"][t][0], 4) for t in TASKS],
                              "best_keras": [round(r["best"][t][0], 4) for t in TASKS],
                              "fit_s": round(r["fit_s"], 1), "total_s": round(time.time() - t1, 1)}), flush=True)
            if args.out:
                with open(args.out, "w") as f:
                    json.dump(results, f)
    print(table(results))


def table(results) -> str:
    """Markdown: per variant, mean ± std over seeds of test AUC income / never-married in the four scorings."""
    wide = all(len(r["last"][TASKS[0]]) > 2 for r in results)
    columns = [("last", 1), ("last", 0), ("best", 1), ("best", 0)] + ([("last", 2), ("last", 3)] if wide else [])
    lines = ["| variant | last, exact AUC | last, Keras AUC | best-val, exact AUC | best-val, Keras AUC |"
             + (" last, Keras AUC 2,000 thr. | last, Keras AUC 20,000 thr. |" if wide else ""),
             "|---|---|---|---|---|" + ("---|---|" if wide else "")]
    for v in dict.fromkeys(r["variant"] for r in results):
        rs = [r for r in results if r["variant"] == v]
        cells = []
        for which, i in columns:
            cell = []
            for t in TASKS:
                vals = np.array([r[which][t][i] for r in rs])
                cell.append(f"{vals.mean():.4f} ± {vals.std(ddof=1) if len(vals) > 1 else 0:.4f}")
            cells.append(" / ".join(cell))
        lines.append(f"| {v} (n={len(rs)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
