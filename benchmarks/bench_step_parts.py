"""Issue 22: what each part of keras_mtl's training step costs, against plain Keras on the same batches.

`bench_overhead.py` builds each case twice (keras_mtl, plain Keras over a
copy of the same layers). Here both train functions run 32 steps per call
over the same cached pipeline, called directly (no `fit` loop around them),
in blocks of 4 calls, the two sides alternating for `--rounds` rounds; the
median wall time per step of each side and of their per-round ratio.
`--without` takes parts out of keras_mtl's step (patching this process
only) to show what each costs:

  checks      the per-task label asserts of a pipeline keras_mtl did not check;
  weights     the metrics' weighting by the missing-label mask (metrics unweighted);
  log         the per-task loss log (`<task>_loss`);
  masking     all of the missing-label handling: labels reshaped only, each
              task's loss a plain mean over the batch, metrics unweighted,
              no checks (what is left is keras_mtl's model, loop and weighting).

    .venv/bin/python benchmarks/bench_step_parts.py [--case a] [--rounds 60] [--without checks weights log masking]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_overhead as overhead  # noqa: E402
from keras_mtl import _model  # noqa: E402

PARTS = ("checks", "weights", "log", "masking")


def remove(parts) -> None:
    """Takes `parts` out of every MultiTaskModel step traced afterwards in this process."""
    model_class = _model.MultiTaskModel
    if "weights" in parts or "masking" in parts:
        def compute_metrics(self, x, y, y_pred, sample_weight=None):
            labels, _ = self.prepare_targets(y, y_pred, sample_weight)
            self.__dict__.pop("_prepared", None)
            return keras.Model.compute_metrics(self, x, labels, y_pred, None)

        model_class.compute_metrics = compute_metrics
    if "log" in parts or "masking" in parts:
        model_class._track_tasks = lambda self, *args, **kwargs: None
    if "masking" in parts:
        def prepare_targets(self, y, y_pred, sample_weight=None, check=None):
            return {t.name: tf.reshape(y[t.label], tf.shape(y_pred[t.name])) for t in self.tasks}, None

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            labels, _ = self.prepare_targets(y, y_pred)
            return tf.add_n([tf.reduce_mean(t.loss(labels[t.name], y_pred[t.name])) for t in self.tasks])

        model_class.prepare_targets = prepare_targets
        model_class.compute_loss = compute_loss


def step_times(case: str, rounds: int, parts) -> dict:
    build, features, labels = overhead.CASES[case][1]()
    data = overhead.pipeline(features, labels)
    models = overhead.make_pair(build, False, overhead.STEPS)
    iterators = {}
    for name, model in models.items():
        model.fit(data.take(64), epochs=1, verbose=0)
        if name == "keras_mtl" and "checks" in parts:
            model._check_in_step(False)
            model.make_train_function()
        iterators[name] = iter(data.repeat())
        for _ in range(4):
            model.train_function(iterators[name])
    times = {name: [] for name in models}
    for r in range(rounds):
        for name in list(models) if r % 2 else list(models)[::-1]:
            start = time.perf_counter()
            for _ in range(4):
                models[name].train_function(iterators[name])
            times[name].append((time.perf_counter() - start) / (4 * overhead.STEPS) * 1e6)
    return {
        "us_per_step": {k: round(statistics.median(v)) for k, v in times.items()},
        "ratio": round(statistics.median(a / p for a, p in zip(times["keras_mtl"], times["plain"])), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="a", choices=sorted(overhead.CASES))
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--without", nargs="*", default=[], choices=PARTS)
    args = parser.parse_args()
    remove(args.without)
    print({"case": args.case, "without": args.without, **step_times(args.case, args.rounds, args.without)}, flush=True)


if __name__ == "__main__":
    main()
