"""What exact per-task gradients cost by themselves: the same step written in plain TensorFlow.

Issue 10 asks full-parameter gradient methods to run within 1.4x of `fixed`.
This times, on the same encoded census-income batches and the shared_bottom
shapes `bench_speed.py` uses (535 encoded features -> 128 -> 64 -> one logit
per task, Adam, XLA), two hand-written steps with no keras_mtl code in them:

- "sum": one backward pass of income_loss + never_married_loss (what `fixed` does);
- "per-task": one backward pass per task, then PCGrad's projection and the
  sum (the least any exact full-parameter method can do).

Their ratio is the floor for keras_mtl's full-parameter mode on this model.
Steps alternate in blocks of 40 over batches already in memory.

    .venv/bin/python benchmarks/bench_step_bound.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as mtl  # noqa: E402

TASKS = ("income", "never_married")


def encoded_batches(count: int):
    data = mtl.data.census_income(batch_size=1024)
    model = mtl.models.shared_bottom(data.inputs, data.tasks, trunk=mtl.trunks.tabular(data.feature_space, [1]))
    batches = []
    for features, labels in data.encoded(model).train.take(count):
        (x,) = tf.nest.flatten(features)
        batches.append((x, tf.stack([labels[t] for t in TASKS], axis=1)))
    return batches


def make_step(dim: int, per_task: bool):
    init = keras.initializers.GlorotUniform(seed=0)
    shared = [tf.Variable(init((dim, 128))), tf.Variable(tf.zeros(128)),
              tf.Variable(init((128, 64))), tf.Variable(tf.zeros(64))]
    heads = [tf.Variable(init((64, 1))) for _ in TASKS]
    variables = shared + heads
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    def task_losses(x, y):
        h = tf.nn.relu(x @ shared[0] + shared[1])
        h = tf.nn.relu(h @ shared[2] + shared[3])
        return [tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y[:, i], (h @ w)[:, 0]))
                for i, w in enumerate(heads)]

    @tf.function(jit_compile=True, autograph=False)
    def step(x, y):
        with tf.GradientTape(persistent=True) as tape:
            losses = task_losses(x, y)
            total = tf.add_n(losses)
        if not per_task:
            grads = tape.gradient(total, variables)
        else:
            g = [tape.gradient(loss, variables) for loss in losses]
            dot = tf.add_n([tf.reduce_sum(a * b) for a, b in zip(g[0][:4], g[1][:4])])
            sq = [tf.add_n([tf.reduce_sum(a * a) for a in gt[:4]]) for gt in g]
            # PCGrad for two tasks: each gradient loses its component along the other when they conflict.
            c0 = tf.where(dot < 0, -dot / sq[1], 0.0)
            c1 = tf.where(dot < 0, -dot / sq[0], 0.0)
            grads = [(1 + c1) * a + (1 + c0) * b for a, b in zip(g[0][:4], g[1][:4])]
            grads += [g[t][4 + t] for t in range(len(TASKS))]  # each head: its own task's gradient
        optimizer.apply_gradients(zip(grads, variables))
        return total

    return step


def block_seconds(step, batches) -> float:
    start = time.perf_counter()
    for x, y in batches:
        out = step(x, y)
    float(out)
    return (time.perf_counter() - start) / len(batches)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    batches = encoded_batches(40)
    dim = int(batches[0][0].shape[1])
    steps = {"sum": make_step(dim, False), "per-task": make_step(dim, True)}
    for step in steps.values():
        block_seconds(step, batches[:3])  # compile
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(block_seconds(step, batches))
    ratios = [p / s for p, s in zip(times["per-task"], times["sum"])]
    print(f"census-income encoded ({dim} features) -> 128 -> 64 -> 2 logits, batch 1024, Adam, XLA; "
          f"{args.rounds} alternating blocks of {len(batches)} steps\n")
    print("| step | ms/step (median) |\n|---|---|")
    for name in steps:
        print(f"| {name} | {1000 * statistics.median(times[name]):.2f} |")
    print(f"\nper-task / sum: median {statistics.median(ratios):.2f} "
          f"(quartiles {statistics.quantiles(ratios, n=4)[0]:.2f}-{statistics.quantiles(ratios, n=4)[2]:.2f})")


if __name__ == "__main__":
    main()
