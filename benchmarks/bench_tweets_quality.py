"""Tweets: one multi-task model vs one single-task model per task, test quality over seeds.

    .venv/bin/python benchmarks/bench_tweets_quality.py [--seeds 0 1 2] [--epochs 5]

The setup of examples/tweets.yaml (trump_tweets, batch 256, text trunk of
width 64, Adam 2e-3, 5 epochs; the multi-task model uses `uncertainty`
weighting, as the example does: a 4-class task and two regressions have
very different loss scales; a second multi-task row uses `fixed` equal
weights). Each single-task baseline is the same trunk
with one head (`keras_mtl.models.single_task`). Every seed reloads the data
(its validation split and shuffling follow the seed; the test split is the
same fixed 20% of tweets) and reinitialises the models. Scores are the last
epoch's model on the test split: device accuracy, RMSE of log1p(retweets)
and of log1p(favourites). Prints a Markdown table: mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

import keras_mtl as mtl
from keras_mtl.training import default_trunk

# (task, log key, label in the table); accuracy: higher is better, RMSE lower.
SCORES = [
    ("device", "device_accuracy", "device accuracy ↑"),
    ("log_retweets", "log_retweets_rmse", "log retweets RMSE ↓"),
    ("log_favorites", "log_favorites_rmse", "log favourites RMSE ↓"),
]
UNITS = [64]  # model.trunk.units in examples/tweets.yaml
# The example's weighting first; `fixed` (equal weights) for comparison.
WEIGHTINGS = ["uncertainty", "fixed"]


def fit_and_score(model, data, epochs: int, weighting: str = "fixed") -> tuple[dict, float]:
    model.compile(optimizer=keras.optimizers.Adam(2e-3), weighting=weighting)
    start = time.perf_counter()
    model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    return model.evaluate(data.test, verbose=0, return_dict=True), seconds


def trivial(data) -> dict:
    """The scores of predicting the train split's majority device and mean log counts."""
    _, train = data.columns["train"]
    _, test = data.columns["test"]
    majority = np.bincount(train["device"]).argmax()
    out = {"device_accuracy": float(np.mean(test["device"] == majority))}
    for task in ("log_retweets", "log_favorites"):
        out[f"{task}_rmse"] = float(np.sqrt(np.mean((test[task] - train[task].mean()) ** 2)))
    return out


def cell(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    multi_rows = {w: f"multi-task shared_bottom ({w})" for w in WEIGHTINGS}
    rows = {**{r: {} for r in multi_rows.values()}, "single-task, one model per task": {},
            "trivial (majority class / train mean)": {}}
    seconds = {"multi": [], "single": []}
    for seed in args.seeds:
        data = mtl.data.trump_tweets(batch_size=256, seed=seed)
        for weighting, row in multi_rows.items():
            keras.utils.set_random_seed(seed)
            multi = mtl.models.shared_bottom(data.inputs, data.tasks, trunk=default_trunk(data, UNITS))
            result, s = fit_and_score(multi, data, args.epochs, weighting=weighting)
            seconds["multi"].append(s)
            for _, key, _ in SCORES:
                rows[row].setdefault(key, []).append(result[key])
        single_s = 0.0
        for task in data.tasks:
            keras.utils.set_random_seed(seed)
            single = mtl.models.single_task(data.inputs, task, trunk=default_trunk(data, UNITS))
            result, s = fit_and_score(single, data, args.epochs)
            single_s += s
            key = next(k for name, k, _ in SCORES if name == task.name)
            rows["single-task, one model per task"].setdefault(key, []).append(result[key])
        seconds["single"].append(single_s)  # the three single-task models of one seed
        for key, value in trivial(data).items():
            rows["trivial (majority class / train mean)"].setdefault(key, []).append(value)
        print(f"seed {seed} done", flush=True)

    print(f"\ntrump_tweets test split (4,152 tweets), {args.epochs} epochs, seeds {args.seeds}, "
          "last epoch's model; mean ± std over seeds\n")
    print("| model | " + " | ".join(label for _, _, label in SCORES) + " |")
    print("|---|" + "---|" * len(SCORES))
    for name, scores in rows.items():
        print(f"| {name} | " + " | ".join(cell(scores[key]) for _, key, _ in SCORES) + " |")
    print(f"\ntraining time per model: multi-task {statistics.mean(seconds['multi']):.1f} s, "
          f"the three single-task models together {statistics.mean(seconds['single']):.1f} s")


if __name__ == "__main__":
    main()
