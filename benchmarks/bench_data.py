"""Input pipeline throughput vs training consumption (examples/s), on this machine.

The pipeline should outpace training by a wide margin (target >= 5x) so that
`fit` never waits for data. Measured here:

* census-income train pipeline (`from_columns`: one gather per batch),
* tweets train pipeline (raw strings),
* a tweets mixture of two sources labelling different tasks (per-example
  source draws, label completion, batching),
* the rate at which `fit` consumes examples: shared-bottom on census
  (tabular trunk) and on tweets (text trunk), fed from cached batches so
  that only the model is timed.

    .venv/bin/python benchmarks/bench_data.py [--seconds 3] [--limit 20000]

Takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import keras  # noqa: E402
import keras_mtl as mtl  # noqa: E402


def pipeline_rate(ds: tf.data.Dataset, seconds: float) -> float:
    """Examples per second read from `ds` (repeated), after one warm-up batch."""
    it = iter(ds.repeat())
    next(it)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        x = next(it)[0]
        n += int(tf.shape(tf.nest.flatten(x)[0])[0])
    return n / (time.perf_counter() - start)


def training_rate(model: keras.Model, ds: tf.data.Dataset, seconds: float) -> float:
    """Examples per second that `fit` consumes from cached batches (compiled step warmed up first)."""
    batches = list(ds.take(8))
    cached = tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda *t: tf.stack(t), *batches))
    batch = int(tf.shape(tf.nest.flatten(batches[0][0])[0])[0])
    model.fit(cached.repeat(), steps_per_epoch=4, epochs=1, verbose=0, shuffle=False)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.fit(cached.repeat(), steps_per_epoch=8, epochs=1, verbose=0, shuffle=False)
        steps += 8
    return steps * batch / (time.perf_counter() - start)


def tweets_mixture(data: mtl.data.MultiTaskData, batch_size: int) -> tf.data.Dataset:
    """The tweets' train split as two sources: one labels device, the other the two counts."""
    x, y = data.columns["train"]
    half = len(y["device"]) // 2
    sources = {
        "devices": tf.data.Dataset.from_tensor_slices(({"text": x["text"][:half]}, {"device": y["device"][:half]})),
        "counts": tf.data.Dataset.from_tensor_slices((
            {"text": x["text"][half:]},
            {"log_retweets": y["log_retweets"][half:], "log_favorites": y["log_favorites"][half:]},
        )),
    }
    return mtl.data.mixture(sources, data.tasks, sampling="uniform", batch_size=batch_size, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--limit", type=int, default=20000, help="census rows read per file")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rows = []

    census = mtl.data.census_income(limit=args.limit, batch_size=args.batch_size)
    census_model = mtl.models.shared_bottom(
        census.inputs, census.tasks, trunk=mtl.trunks.tabular(census.feature_space, [128, 64])
    )
    census_model.compile(optimizer="adam")
    rows.append(("census", pipeline_rate(census.train, args.seconds),
                 training_rate(census_model, census.train, args.seconds)))

    tweets = mtl.data.trump_tweets(batch_size=args.batch_size)
    tweets_model = mtl.models.shared_bottom(
        tweets.inputs, tweets.tasks, trunk=mtl.trunks.text(tweets.vectorizer, units=64)
    )
    tweets_model.compile(optimizer="adam")
    consume = training_rate(tweets_model, tweets.train, args.seconds)
    rows.append(("tweets", pipeline_rate(tweets.train, args.seconds), consume))
    rows.append(("tweets mixture (2 sources)",
                 pipeline_rate(tweets_mixture(tweets, args.batch_size), args.seconds), consume))

    print(f"| pipeline (batch {args.batch_size}) | pipeline ex/s | fit consumes ex/s | ratio |")
    print("|---|---|---|---|")
    for name, produce, consume in rows:
        print(f"| {name} | {produce:,.0f} | {consume:,.0f} | {produce / consume:.1f}x |")


if __name__ == "__main__":
    main()
