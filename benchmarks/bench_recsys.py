"""Issue 25: ESMM against a CVR model trained on clicked impressions only, on simulated impressions.

`mtl.data.simulated_impressions` (a simulation with known propensities; see
its docstring) draws `--rows` impressions of one world of users and items,
the last quarter being the test split. Three ways to predict conversion,
each with `trunks.tabular(data.feature_space, [64, 32])` over the inferred
columns (hashed user and item ids, position, price, category, hour), Adam
1e-3, batch 1024, trained until the AUC of pCVR on the clicked validation
impressions has not improved for 2 epochs (at most `--epochs`; the best epoch's weights kept), `--seeds` model
seeds:

- `cvr_on_clicks`: one Binary task trained on the clicked training
  impressions only (the ESMM paper's BASE);
- `conditional`: shared-bottom with `click` and `conversion` given click
  (the conversion loss on clicked impressions; the trunk shared with CTR);
- `esmm`: `mtl.models.esmm` (shared-bottom under it): pCTR on clicks and
  pCTR x pCVR on "clicked and converted", over every impression;
- `aitm`: `mtl.models.aitm` with towers of 32 and the calibrator at 0.6:
  `click` and `purchase` (clicked and converted, 0 where not clicked) over
  every impression, pCVR read as p(purchase) / p(click), stopped on the
  validation AUC of p(purchase).

Scored on every test impression: the AUC of pCVR against `would_convert`
(the conversion drawn for every impression, clicked or not: what a CVR
model must rank at serving time), the AUC of pCVR on the clicked test
impressions against the observed conversions, the AUC of pCTR x pCVR
against "clicked and converted", and the mean |pCVR - true CVR|. For the
first seed, the conditional and ESMM models' heads are calibrated on their
validation split (Platt and isotonic) and their ECE and log loss reported on the test
impressions before and after (pCVR on the clicked ones). Also the
steady epoch time of ESMM over shared-bottom with the two tasks
independent, on the same data (median of epochs 2..E, both in this
process).

    .venv/bin/python benchmarks/bench_recsys.py [--rows 400000] [--epochs 20] [--seeds 3] [--selection-bias 1.0]
    # AITM's towers over a shared trunk, MMoE's and PLE's mixtures, only:
    .venv/bin/python benchmarks/bench_recsys.py --aitm-only --aitm-architectures shared_bottom mmoe ple --seeds 1

`--variants MODEL:FORM:STOP ...` adds rows named `MODEL_FORM_STOP`, each
built after the rows above in every seed (which stay as they were):
MODEL is `esmm`, `conditional` or `clicks` (the clicked-only model); FORM
is `trunk` (the [64, 32] trunk shared, a linear head per task: the rows
above) or `towers` (the ESMM paper's form: only the embedding lookup is
shared, `trunks.tabular(data.feature_space, [])`, and each task has its
own [64, 32] tower, `Binary(..., tower=[64, 32])`; for the one-task
clicked-only model the two forms are the same network); STOP is what
early stopping watches (patience 2, best weights kept): `pcvr_auc` (pCVR
AUC on the clicked validation impressions, as above), `loss` (the
validation loss of the training objective: for ESMM pCTR's loss plus
pCTR x pCVR's over every impression, the paper's objective; for the
clicked-only model its loss on the clicked impressions), `ctcvr_auc`
(the AUC of pCTR x pCVR against "clicked and converted" over every
validation impression) or `none` (all `--epochs` epochs, the last
weights). Variant rows also report `cvr_auc_all_oracle_epoch`: the best
pCVR AUC over all test impressions at the end of any epoch run, an
oracle no stopping rule can beat (it looks at the test labels: a bound,
not a result). `--variants-only` skips AITM, the conditional and
ESMM rows above, the step-time and calibration runs (the clicked-only row
stays, as the baseline):

    .venv/bin/python benchmarks/bench_recsys.py --variants-only --seeds 3 \\
        --variants esmm:trunk:loss esmm:towers:pcvr_auc esmm:towers:loss conditional:towers:pcvr_auc clicks:trunk:loss
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def auc(labels, scores) -> float:
    """Exact ROC AUC (ties counted half), from ranks."""
    import numpy as np
    import pandas as pd

    labels = np.asarray(labels, bool)
    ranks = pd.Series(np.asarray(scores, "float64")).rank().to_numpy()
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


class EpochTimes:
    def __init__(self):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(inner, epoch, logs=None):
                inner.start = time.perf_counter()

            def on_epoch_end(inner, epoch, logs=None):
                self.times.append(time.perf_counter() - inner.start)

        self.times: list[float] = []
        self.callback = Timer()


# What early stopping watches, for each STOP of `--variants`: (monitor, mode).
STOPS = {
    "pcvr_auc": ("val_conversion_auc", "max"),
    "loss": ("val_loss", "min"),
    "ctcvr_auc": ("val_click_and_conversion_auc", "max"),
    "none": (None, None),  # no early stopping: all `--epochs` epochs, the last epoch's weights
}
VARIANT_MODELS = ("esmm", "conditional", "clicks")
VARIANT_FORMS = ("trunk", "towers")


def parse_variant(text: str) -> tuple[str, str, str]:
    """`"esmm:towers:loss"` -> `("esmm", "towers", "loss")`, with an error naming what is wrong."""
    parts = text.split(":")
    if len(parts) != 3:
        raise SystemExit(f"--variants: {text!r} is not MODEL:FORM:STOP (e.g. esmm:towers:loss).")
    model, form, stop = parts
    for what, value, allowed in (("MODEL", model, VARIANT_MODELS), ("FORM", form, VARIANT_FORMS), ("STOP", stop, tuple(STOPS))):
        if value not in allowed:
            raise SystemExit(f"--variants: {what} {value!r} in {text!r} is not one of {list(allowed)}.")
    if model == "clicks" and stop == "ctcvr_auc":
        raise SystemExit(f"--variants: {text!r}: the clicked-only model has no pCTR, so no ctcvr_auc to stop on.")
    return model, form, stop


# What each architecture under AITM's towers takes (the trunk is [64, 32] in every model).
AITM_UNDER = {
    "shared_bottom": {},
    "mmoe": {"num_experts": 3, "expert_units": [32]},
    "ple": {"num_levels": 2, "num_experts": 1, "num_task_experts": 1, "expert_units": [32]},
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--selection-bias", type=float, default=1.0)
    p.add_argument("--users", type=int, default=5_000)
    p.add_argument("--items", type=int, default=1_000)
    p.add_argument("--aitm-architectures", nargs="+", default=["shared_bottom"],
                   help="architectures under AITM's towers: shared_bottom, mmoe (3 experts of 32), ple (2 levels)")
    p.add_argument("--aitm-only", action="store_true", help="train only the AITM models (and not the other rows)")
    p.add_argument("--variants", nargs="+", default=[], metavar="MODEL:FORM:STOP",
                   help="extra rows: MODEL esmm|conditional|clicks, FORM trunk|towers, STOP pcvr_auc|loss|ctcvr_auc|none")
    p.add_argument("--variants-only", action="store_true",
                   help="train only the clicked-only baseline and the --variants rows")
    args = p.parse_args()
    variants = [parse_variant(v) for v in args.variants]
    if args.variants_only and args.aitm_only:
        raise SystemExit("--variants-only and --aitm-only exclude each other.")
    standard = not (args.aitm_only or args.variants_only)

    import keras
    import numpy as np

    import keras_mtl as mtl
    from keras_mtl.data.impressions import TRUTH
    from keras_mtl.tasks import Binary

    frame = mtl.data.simulated_impressions(
        args.rows, num_users=args.users, num_items=args.items, selection_bias=args.selection_bias, truth=True, seed=0
    )
    cut = args.rows * 3 // 4
    train, test = frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)
    drop = {c: "drop" for c in TRUTH}
    clicked = test["click"] == 1
    out = {"rows": args.rows, "train": cut, "test": len(test), "train_clicks": int(train["click"].sum()),
           "train_conversions": int(np.nansum(train["conversion"])), "selection_bias": args.selection_bias,
           "max_epochs": args.epochs, "runs": {}, "epoch_seconds": {}, "epochs_run": {}}
    joint_label = (test["click"] == 1) & (test["would_convert"] == 1)

    def data_for(rows, tasks, test_rows=test):
        # Labels of tasks a model lacks are not features (the clicked-only model would read `click`).
        labels = {t.label for t in tasks}
        unused = {c: "drop" for c in ("click", "conversion", "purchase") if c in rows and c not in labels}
        return mtl.data.from_dataframe({"train": rows, "test": test_rows}, tasks, features={**drop, **unused}, echo=None)

    def fit(model, data, timer=None, monitor="val_conversion_auc", mode="max", each_epoch=None):
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        fast = data.encoded(model)
        # The clicked-only model has a tenth of the rows: each model trains to its own best epoch.
        # Each model is selected on what a practitioner can observe of pCVR: its AUC on the
        # clicked validation impressions. (ESMM's validation loss, on the product, rises from
        # the first epoch as pCTR overfits the ids, while pCVR is still learning.)
        callbacks = [keras.callbacks.EarlyStopping(monitor, mode=mode, patience=2, restore_best_weights=True)] if monitor else []
        callbacks += [timer.callback] if timer else []
        if each_epoch is not None:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: each_epoch(model, fast)))
        history = model.fit(fast.train, validation_data=fast.validation, epochs=args.epochs, verbose=0, callbacks=callbacks)
        if monitor is not None and monitor not in history.history:
            raise KeyError(f"{model.name}: early stopping watched {monitor!r}, which fit did not log; "
                           f"it logged {sorted(history.history)}.")
        out["epochs_run"].setdefault(model.name, []).append(len(history.history["loss"]))
        fitted[model.name] = (model, fast)
        return model.predict(fast.test, verbose=0)

    fitted = {}

    def calibration_of(name, uncalibrated) -> dict:
        """ECE and log loss on the test impressions (pCVR on the clicked ones, its sample space)
        before and after calibrating the model's heads on its validation split."""
        model, fast = fitted[name]
        rows = {}
        for method in ("platt", "isotonic"):
            pred = mtl.calibration.calibrate(model, fast.validation, method=method).predict(fast.test, verbose=0)
            for task, kept, labels in (("click", slice(None), test["click"]),
                                       ("conversion", clicked, test["conversion"][clicked])):
                before = mtl.calibration.reliability(labels, uncalibrated["pctr" if task == "click" else "pcvr"][kept])
                after = mtl.calibration.reliability(labels, pred[task][:, 0][kept])
                rows[f"{name}/{task}/{method}"] = {
                    "ece_before": before["ece"], "ece_after": after["ece"],
                    "logloss_before": round(before["logloss"], 4), "logloss_after": round(after["logloss"], 4),
                }
        return rows

    for seed in range(args.seeds):
        results = {}
        if not args.aitm_only:
            keras.utils.set_random_seed(seed)
            data = data_for(train[train["click"] == 1], [Binary("conversion")])
            model = mtl.models.single_task(data.inputs, Binary("conversion"), mtl.trunks.tabular(data.feature_space, [64, 32]))
            results["cvr_on_clicks"] = {"pcvr": fit(model, data)["conversion"][:, 0]}
        # AITM predicts each funnel step over every impression: "purchase" is 0 where nothing was
        # clicked; its pCVR is p(purchase) / p(click).
        funnel = [Binary("click"), Binary("purchase")]
        data = data_for(train.assign(purchase=train["conversion"].fillna(0.0)), funnel,
                        test.assign(purchase=test["conversion"].fillna(0.0)))
        for architecture in () if args.variants_only else args.aitm_architectures:
            keras.utils.set_random_seed(seed)
            name = "aitm" if architecture == "shared_bottom" else f"aitm_{architecture}"
            timer = EpochTimes()
            model = mtl.models.aitm(data.inputs, funnel, mtl.trunks.tabular(data.feature_space, [64, 32]),
                                    tower_units=[32], calibrator=0.6, architecture=architecture,
                                    name=name, **AITM_UNDER[architecture])
            pred = fit(model, data, timer, monitor="val_purchase_auc")
            pctr, pjoint = pred["click"][:, 0], pred["purchase"][:, 0]
            results[name] = {"pcvr": np.clip(pjoint / np.maximum(pctr, 1e-6), 0, 1), "pctr": pctr, "pjoint": pjoint}
            out["epoch_seconds"].setdefault(name, []).append(statistics.median(timer.times[1:] or timer.times))
        for name in ("conditional", "esmm") if standard else ():
            keras.utils.set_random_seed(seed)
            tasks = [Binary("click"), Binary("conversion", given="click")]
            data = data_for(train, tasks)
            trunk = mtl.trunks.tabular(data.feature_space, [64, 32])
            timer = EpochTimes()
            if name == "esmm":
                model = mtl.models.esmm(data.inputs, tasks[0], Binary("conversion"), trunk)
            else:
                model = mtl.models.shared_bottom(data.inputs, tasks, trunk, name="conditional")
            pred = fit(model, data, timer)
            results[name] = {"pcvr": pred["conversion"][:, 0], "pctr": pred["click"][:, 0]}
            out["epoch_seconds"].setdefault(name, []).append(statistics.median(timer.times[1:] or timer.times))
        if seed == 0 and standard:
            keras.utils.set_random_seed(seed)
            tasks = [Binary("click"), Binary("conversion")]  # independent: the step-time baseline
            data = data_for(train, tasks)
            timer = EpochTimes()
            fit(mtl.models.shared_bottom(data.inputs, tasks, mtl.trunks.tabular(data.feature_space, [64, 32])), data, timer)
            out["epoch_seconds"]["shared_bottom_independent"] = [statistics.median(timer.times[1:] or timer.times)]
        if seed == 0 and standard:
            for name in ("conditional", "esmm"):
                out.setdefault("calibration", {}).update(calibration_of(name, results[name]))
        for kind, form, stop in variants:
            # After every row above, each seeded afresh: those rows are unchanged by adding variants.
            keras.utils.set_random_seed(seed)
            name = f"{kind}_{form}_{stop}"
            # The paper's form: the embeddings shared, a [64, 32] tower per task; else the whole trunk shared.
            tower = [64, 32] if form == "towers" else []
            epoch_aucs = []  # the oracle bound: test pCVR AUC over all impressions after each epoch

            def each_epoch(model, fast, epoch_aucs=epoch_aucs):
                epoch_aucs.append(auc(test["would_convert"], model.predict(fast.test, verbose=0)["conversion"][:, 0]))

            stopping = {"monitor": STOPS[stop][0], "mode": STOPS[stop][1], "each_epoch": each_epoch}
            if kind == "clicks":
                task = Binary("conversion", tower=tower)
                data = data_for(train[train["click"] == 1], [task])
                trunk = mtl.trunks.tabular(data.feature_space, [] if tower else [64, 32])
                model = mtl.models.single_task(data.inputs, task, trunk, name=name)
                results[name] = {"pcvr": fit(model, data, **stopping)["conversion"][:, 0], "oracle": max(epoch_aucs)}
                continue
            tasks = [Binary("click", tower=tower), Binary("conversion", given="click", tower=tower)]
            data = data_for(train, tasks)
            trunk = mtl.trunks.tabular(data.feature_space, [] if tower else [64, 32])
            if kind == "esmm":
                model = mtl.models.esmm(data.inputs, tasks[0], Binary("conversion", tower=tower), trunk, name=name)
            else:
                model = mtl.models.shared_bottom(data.inputs, tasks, trunk, name=name)
            pred = fit(model, data, **stopping)
            results[name] = {"pcvr": pred["conversion"][:, 0], "pctr": pred["click"][:, 0], "oracle": max(epoch_aucs)}
        for name, r in results.items():
            row = {
                "cvr_auc_all_impressions": auc(test["would_convert"], r["pcvr"]),
                "cvr_auc_clicked": auc(test["conversion"][clicked] == 1, r["pcvr"][clicked]),
                "cvr_mae_vs_true": float(np.abs(r["pcvr"] - test["true_cvr"]).mean()),
            }
            if "oracle" in r:
                row["cvr_auc_all_oracle_epoch"] = r["oracle"]
            if "pctr" in r:
                row["ctcvr_auc"] = auc(joint_label, r.get("pjoint", r["pctr"] * r["pcvr"]))
            out["runs"].setdefault(name, []).append(row)
        print(f"seed {seed}: " + json.dumps({k: v[-1] for k, v in out["runs"].items()}), flush=True)
    summary = {}
    for name, rows in out["runs"].items():
        summary[name] = {
            k: f"{statistics.mean(r[k] for r in rows):.4f} ± {statistics.pstdev(r[k] for r in rows):.4f}"
            for k in rows[0]
        }
    out["summary"] = summary
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
