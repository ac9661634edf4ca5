"""Issue 25: does a Ranking task rank better than a pointwise Binary task, alone and beside another task?

Data: `mtl.data.simulated_impressions` (a simulation with known
propensities; see its docstring), `--users` users with about
`--sessions` x `--per-session` impressions each. A user's impressions are
dealt in turn into `--sessions` sessions (the k-th into session k mod S),
and a session, the list of items one user was shown, is the group (query
key) a ranking orders. The last session of every user is the test split
and the one before it the validation split: held-out groups of users seen
in training (`--train-sessions clicked` keeps only the training sessions
with a click, the only ones a ranking loss learns from, for every model).
Graded relevance is `click + conversion` (0, 1 or 2; a conversion is only
seen after a click). The features are the impression's
hashed `user_id` and `item_id`, `position`, `price`, `category` and `hour`
(as in `bench_recsys.py`); the session id, labels and true propensities
are not features.

Models, each with `trunks.tabular(data.feature_space, [64, 32])`, Adam 1e-3,
batch `--batch-size` (whole sessions per batch but the one cut at its end),
at most `--epochs` epochs, stopped when the validation NDCG@10 of its
ranking score has not improved for 2 epochs, the best epoch's weights kept:

- `binary_click`: one Binary task on `click`; ranks by p(click);
- `pairwise`: one `Ranking("relevance", group="session", loss="pairwise")`;
- `listwise`: the same with `loss="listwise"`;
- `pairwise+conversion`, `listwise+conversion`: shared-bottom with that
  Ranking task and a Binary `conversion` task (labelled on clicked
  impressions only: NaN elsewhere), ranked by the Ranking score;
- `binary_click+conversion`: the pointwise multi-task counterpart on the
  same labels, `click` and `conversion` given click, ranked by the
  expected gain p(click) x (1 + 2 p(conversion | click)) (gain 2^y - 1:
  1 for a click, 3 for a click and a conversion).

Scored on the test sessions: NDCG@5 and NDCG@10 (gains 2^y - 1, discount
1/log2(1 + rank), ties broken by row order, the mean over sessions with a
click) against the observed relevance, and "true" NDCG@10: with each
impression's expected gain ctr x (1 + 2 cvr) from the true propensities
as its gain (noise-free, every session; sorting by it maximises the
expected DCG). NDCG is a numpy reference, checked against the library's
`keras_mtl._ranking.ndcg` on the first 100 test sessions. Each seed draws
a new world (users, items, impressions) and new initial weights; mean ±
std over `--seeds` seeds, and each model's paired difference from
`binary_click`. Two reference rankings frame the scale: `random` scores,
and `oracle`, the true expected gain itself (true NDCG 1 by definition;
on the observed labels, about the most a model can expect, their clicks
being draws).

Also the step time of one Ranking head over one Binary head on the same
trunk and data (`model.train_function` alone on `--timing-steps` batches in
memory, after a warm-up fit; the models alternating for `--timing-rounds`
rounds in this process, median per model), at each `--timing-batch` size:
the Ranking loss and its NDCG metric compare every pair of examples in a
batch, O(batch^2).

    .venv/bin/python benchmarks/bench_ranking.py [--users 1200] [--sessions 5] [--per-session 16] [--epochs 20] [--seeds 3]
    # every model on the training sessions with a click only, no timing:
    .venv/bin/python benchmarks/bench_ranking.py --train-sessions clicked --timing-batch
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras warns on every fit that `shuffle` is ignored for a tf.data.Dataset: keras_mtl's
# datasets shuffle themselves (whole sessions when a task ranks).
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl as mtl  # noqa: E402
from bench_pretrained import time_steps  # noqa: E402
from keras_mtl.tasks import Binary, Ranking  # noqa: E402

LABELS = ("click", "conversion", "relevance", "session")
TRUTH = ("true_ctr", "true_cvr", "would_convert")
# Reference rankings, no model: random scores, and the true expected gain ctr x (1 + 2 cvr).
REFERENCES = ("random", "oracle")
MODELS = ("binary_click", "pairwise", "listwise", "pairwise+conversion", "listwise+conversion",
          "binary_click+conversion")


def ndcg_at(groups, relevance, scores, k) -> tuple[float, int]:
    """Mean NDCG@k over the groups with a positive relevance, and their number.

    Gains 2^y - 1, discount 1/log2(1 + rank); ties in score are broken by row
    order (as `keras_mtl._ranking.ndcg` breaks them by batch position).
    """
    groups, relevance, scores = np.asarray(groups), np.asarray(relevance, "float64"), np.asarray(scores, "float64")
    n, rows = len(groups), np.arange(len(groups))
    ids, inverse = np.unique(groups, return_inverse=True)

    def dcg(values):
        order = np.lexsort((rows, -values, inverse))  # by group, then score descending, then row
        g = inverse[order]
        starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
        rank = rows - np.repeat(starts, np.diff(np.r_[starts, n])) + 1
        gain = (2.0 ** relevance[order] - 1.0) / np.log2(rank + 1.0) * (rank <= k)
        return np.bincount(g, gain, minlength=len(ids))

    actual, ideal = dcg(scores), dcg(relevance)
    counted = ideal > 0
    return float(np.mean(actual[counted] / ideal[counted])), int(counted.sum())


def library_ndcg(groups, relevance, scores, k) -> float:
    """The library's in-batch NDCG@k over the same rows, as one batch."""
    from keras_mtl import _ranking

    total, lists = _ranking.ndcg(np.float32(scores), np.float32(relevance), np.ones(len(scores), "float32"),
                                 np.asarray(groups), k)
    return float(total / lists)


def sessions_table(args, seed: int):
    """`{"train", "validation", "test"}` frames of simulated impressions with a session (group) id."""
    frame = mtl.data.simulated_impressions(
        args.users * args.sessions * args.per_session, num_users=args.users, num_items=args.items,
        truth=True, seed=seed,
    )
    user = frame["user_id"].str[1:].astype("int64").to_numpy()
    session = frame.groupby(user).cumcount().to_numpy() % args.sessions  # the user's k-th impression
    frame["session"] = user * args.sessions + session
    frame["relevance"] = frame["click"] + frame["conversion"].fillna(0.0)
    last = args.sessions - 1
    parts = {"train": session < last - 1, "validation": session == last - 1, "test": session == last}
    frames = {name: frame[rows].reset_index(drop=True) for name, rows in parts.items()}
    if args.train_sessions == "clicked":
        # What a ranking loss learns from: a session without a click has no pair and no list.
        train = frames["train"]
        frames["train"] = train[train.groupby("session")["click"].transform("max") > 0].reset_index(drop=True)
    return frames


def tasks_of(name: str) -> list:
    if name == "binary_click":
        return [Binary("click")]
    if name == "binary_click+conversion":
        return [Binary("click"), Binary("conversion", given="click")]
    loss, *beside = name.split("+")
    # `conversion` is NaN where nothing was clicked: its loss counts the clicked impressions only.
    return [Ranking("relevance", group="session", loss=loss, ndcg_at=10), *(Binary(b) for b in beside)]


def score_of(name: str, pred) -> np.ndarray:
    """The ranking score of a model's predictions."""
    if name == "binary_click":
        return pred["click"][:, 0]
    if name == "binary_click+conversion":
        return pred["click"][:, 0] * (1.0 + 2.0 * pred["conversion"][:, 0])  # expected gain 2^y - 1
    return pred["relevance"][:, 0]


def data_for(frames, tasks, batch_size: int):
    """The splits with the tasks' labels (and group) read as labels, every other label and the truth dropped."""
    used = {c for t in tasks for c in (t.label, t.group) if c}
    drop = {c: "drop" for c in (*LABELS, *TRUTH) if c not in used}
    return mtl.data.from_dataframe(frames, tasks, features=drop, batch_size=batch_size, echo=None)


def build(data, tasks, seed: int):
    keras.utils.set_random_seed(seed)
    model = mtl.models.shared_bottom(data.inputs, tasks, mtl.trunks.tabular(data.feature_space, [64, 32]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


class BestNDCG(keras.callbacks.Callback):
    """Stops when the validation NDCG@10 of the model's ranking score has not improved for
    `patience` epochs and restores the best epoch's weights: one criterion for every model,
    pointwise or not (the Binary models log no NDCG of their own)."""

    def __init__(self, name, validation, frame, patience=2):
        super().__init__()
        self.name, self.validation, self.frame, self.patience = name, validation, frame, patience
        self.best, self.best_epoch, self.weights, self.history = -1.0, 0, None, []

    def on_epoch_end(self, epoch, logs=None):
        score = score_of(self.name, self.model.predict(self.validation, verbose=0))
        value, _ = ndcg_at(self.frame["session"], self.frame["relevance"], score, 10)
        self.history.append(round(value, 4))
        if value > self.best:
            self.best, self.best_epoch, self.weights = value, epoch, self.model.get_weights()
        elif epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.model.set_weights(self.weights)


def scores_row(test, truth, score) -> dict:
    """NDCG@5 and @10 of `score` against the observed relevance, NDCG@10 against the true grades."""
    row = {}
    for k in (5, 10):
        row[f"ndcg{k}"], row["sessions"] = ndcg_at(test["session"], test["relevance"], score, k)
    row["ndcg10_true"], _ = ndcg_at(test["session"], truth, score, 10)
    return row


def quality(args) -> dict:
    runs = {name: [] for name in (*args.models, *REFERENCES)}
    for seed in range(args.seeds):
        frames = sessions_table(args, seed)
        test = frames["test"]
        gain = (test["true_ctr"] * (1.0 + 2.0 * test["true_cvr"])).to_numpy()
        truth = np.log2(1.0 + gain)  # a grade whose gain 2^y - 1 is the expected gain
        references = {"random": np.random.default_rng(seed).random(len(test)), "oracle": gain}
        for name, score in references.items():
            runs[name].append({"seed": seed, **scores_row(test, truth, score)})
        for name in args.models:
            tasks = tasks_of(name)
            data = data_for(frames, tasks, args.batch_size)
            model = build(data, tasks, seed)
            fast = data.encoded(model)
            stop = BestNDCG(name, fast.validation, frames["validation"])
            start = time.perf_counter()
            model.fit(fast.train, epochs=args.epochs, verbose=0, callbacks=[stop])
            seconds = time.perf_counter() - start
            score = score_of(name, model.predict(fast.test, verbose=0))
            row = {"seed": seed, "epochs": len(stop.history), "best_epoch": stop.best_epoch + 1,
                   "fit_seconds": round(seconds, 1), "val_ndcg10": stop.history, **scores_row(test, truth, score)}
            if seed == 0 and name == args.models[0]:
                # The numpy reference against the library's NDCG, on the first 100 test sessions.
                first = test["session"].isin(np.unique(test["session"])[:100]).to_numpy()
                ours = ndcg_at(test["session"][first], test["relevance"][first], score[first], 10)[0]
                theirs = library_ndcg(test["session"][first], test["relevance"][first], score[first], 10)
                if abs(ours - theirs) > 1e-4:
                    raise AssertionError(f"numpy NDCG@10 {ours:.6f} != keras_mtl._ranking.ndcg {theirs:.6f}")
                row["ndcg10_check"] = [round(ours, 6), round(theirs, 6)]
            runs[name].append(row)
            print(json.dumps({name: row}), flush=True)
            keras.backend.clear_session()
    return runs


def timing(args) -> dict:
    """Median ms per training step of one Ranking head (each loss) and one Binary head, same trunk and data."""
    frames = sessions_table(args, 0)
    out = {}
    for batch_size in args.timing_batch:
        models, batches = {}, {}
        for name in ("binary_click", "pairwise", "listwise"):
            tasks = tasks_of(name)
            data = data_for(frames, tasks, batch_size)
            models[name] = build(data, tasks, 0)
            fast = data.encoded(models[name])
            models[name].fit(fast.train.take(3), epochs=1, verbose=0)  # traces the step: warm-up
            batches[name] = list(fast.train.take(args.timing_steps))
            # The step traces again for batches from a list (not fit's iterator): once, untimed.
            time_steps(models[name], batches[name][:1])
        times = {name: [] for name in models}
        for _ in range(args.timing_rounds):
            for name, model in models.items():
                times[name] += time_steps(model, batches[name])
        ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
        out[batch_size] = {name: {"ms": round(v, 2), "ratio": round(v / ms["binary_click"], 2)} for name, v in ms.items()}
        print(json.dumps({"timing": {batch_size: out[batch_size]}}), flush=True)
        keras.backend.clear_session()
    return out


def summarize(runs) -> list[str]:
    keys = ("ndcg5", "ndcg10", "ndcg10_true")
    base = runs.get("binary_click")
    lines = ["| model | NDCG@5 | NDCG@10 | true NDCG@10 | Δ NDCG@10 vs binary_click (paired) "
             "| Δ NDCG@10 true vs binary_click | epochs (best) | fit s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rows in runs.items():
        if not rows:  # --seeds 0: timing only
            continue
        cells = [f"{statistics.mean(r[k] for r in rows):.4f} ± {statistics.pstdev(r[k] for r in rows):.4f}" for k in keys]
        for k in ("ndcg10", "ndcg10_true"):
            if base and name != "binary_click":
                diffs = [r[k] - b[k] for r, b in zip(rows, base)]
                cells.append(f"{statistics.mean(diffs):+.4f} ± {statistics.pstdev(diffs):.4f}")
            else:
                cells.append("")
        if name in REFERENCES:
            lines.append(f"| *{name}* | " + " | ".join(cells) + " |  |  |")
            continue
        epochs = ", ".join(f"{r['epochs']} ({r['best_epoch']})" for r in rows)
        fit = statistics.mean(r["fit_seconds"] for r in rows)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {epochs} | {fit:.1f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=1200)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--sessions", type=int, default=5, help="sessions per user: all but the last two train")
    p.add_argument("--per-session", type=int, default=16, help="impressions per session, on average")
    p.add_argument("--epochs", type=int, default=20, help="at most; stopped on the validation NDCG@10")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--train-sessions", choices=("all", "clicked"), default="all",
                   help="clicked: train every model only on the training sessions with a click")
    p.add_argument("--seeds", type=int, default=3, help="0: the step timing only")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--timing-batch", type=int, nargs="*", default=[1024, 4096], help="batch sizes timed (none: skip)")
    p.add_argument("--timing-steps", type=int, default=10)
    p.add_argument("--timing-rounds", type=int, default=5)
    args = p.parse_args()
    if args.sessions < 3:
        p.error("--sessions must be >= 3 (train, validation and test sessions per user)")

    started = datetime.datetime.now(datetime.timezone.utc)
    runs = quality(args)
    steps = timing(args) if args.timing_batch else {}
    print(f"\nStarted {started:%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.2f} at the end.\n")
    print("\n".join(summarize(runs)))
    if steps:
        print("\n| batch | binary_click ms/step | pairwise ms/step (ratio) | listwise ms/step (ratio) |\n|---|---|---|---|")
        for batch_size, row in steps.items():
            print(f"| {batch_size} | {row['binary_click']['ms']:.1f} | {row['pairwise']['ms']:.1f} "
                  f"({row['pairwise']['ratio']:.2f}×) | {row['listwise']['ms']:.1f} ({row['listwise']['ratio']:.2f}×) |")
    print("RESULT " + json.dumps({"runs": runs, "step_ms": steps}))


if __name__ == "__main__":
    main()
