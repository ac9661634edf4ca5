"""Sentiment and topic from two corpora that each label one task, with one shared text trunk.

IMDB reviews label sentiment only; AG News labels topic only. A mixture draws
examples from both (temperature sampling) and marks the task each example has
no label for, so one model with a shared text encoder learns both tasks. The
model takes raw strings: tokenisation runs inside it.

    # Real data, once prepared on disk (needs the network once):
    #   tfds build imdb_reviews ag_news_subset      (or: --download)
    python examples/news_sentiment_topic.py
    # Under a minute, offline: small slices; mocked TFDS data (random words)
    # when the real datasets are not on disk.
    python examples/news_sentiment_topic.py --quick

Options: --mock (always fake data), --data-dir DIR (where TFDS datasets live),
--epochs N, --per-source N (training examples per source), --download.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

import keras  # noqa: E402
import keras_mtl as mtl  # noqa: E402

TOPICS = ("World", "Sports", "Business", "Sci/Tech")  # ag_news_subset's label order


def sources(split: str, args) -> dict:
    """The two sources of a split: reviews (sentiment) and news (topic), as (features, labels)."""
    common = dict(data_dir=args.data_dir, download=args.download, shuffle_buffer=10_000, seed=0)
    reviews = mtl.data.from_tfds(
        "imdb_reviews", split, features={"text": "text"}, labels={"sentiment": "label"}, **common
    )
    news = mtl.data.from_tfds(
        "ag_news_subset", split, features={"text": "description"}, labels={"topic": "label"}, **common
    )
    n = args.per_source if split == "train" else max(64, args.per_source // 4)
    return {"reviews": reviews.take(n), "news": news.take(n)}


def run(args) -> None:
    train, test = sources("train", args), sources("test", args)
    # The vocabulary is learned from the training texts of both sources.
    texts = np.array([x["text"] for ds in train.values() for x, _ in ds.as_numpy_iterator()], dtype=object)
    vectorizer = mtl.data.text_vectorizer(texts, max_tokens=20_000, sequence_length=128)

    tasks = [mtl.tasks.Binary("sentiment"), mtl.tasks.Multiclass("topic", num_classes=len(TOPICS))]
    inputs = {"text": keras.Input(shape=(), dtype="string", name="text")}
    model = mtl.models.shared_bottom(
        inputs, tasks, trunk=mtl.trunks.text(vectorizer, embedding_dim=32, units=32)
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3))

    mix = mtl.data.mixture(
        train, tasks, sampling=mtl.data.Temperature(2.0), batch_size=32, seed=0, inputs=model
    )
    validation = mtl.data.concatenate(test, tasks, batch_size=64, inputs=model)
    print(f"mixture: {len(mix)} batches of 32 per epoch from {list(train)}")
    # shuffle=False: the mixture draws anew every epoch by itself.
    model.fit(mix, validation_data=validation, epochs=args.epochs, verbose=2, shuffle=False)

    # Each task is scored on the source that labels it; the other source's
    # rows carry missing markers and count for nothing.
    logs = model.evaluate(validation, verbose=0, return_dict=True)
    print({k: round(v, 4) for k, v in logs.items() if k.startswith(("sentiment_", "topic_"))})

    texts = ["a wonderful, moving film", "shares fell after the earnings report"]
    pred = model.predict({"text": tf.constant(texts)}, verbose=0)
    print("raw-string predictions:")
    for text, s, t in zip(texts, pred["sentiment"][:, 0], pred["topic"]):
        print(f"  {text!r}: positive={s:.2f} topic={TOPICS[int(np.argmax(t))]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small slices, one epoch, offline (< 1 minute)")
    parser.add_argument("--mock", action="store_true", help="use fake TFDS data (tfds.testing.mock_data)")
    parser.add_argument("--download", action="store_true", help="prepare the TFDS datasets if missing (network)")
    parser.add_argument("--data-dir", default=None, help="TFDS data folder (default ~/tensorflow_datasets)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--per-source", type=int, default=None, help="training examples per source")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (1 if args.quick else 3)
    args.per_source = args.per_source or (512 if args.quick else 20_000)
    keras.utils.set_random_seed(0)

    mock = args.mock
    if not mock:
        try:
            sources("train", argparse.Namespace(**{**vars(args), "per_source": 1}))
        except FileNotFoundError as e:
            if not args.quick:
                print(f"{e}\n(Or run with --quick or --mock for fake data.)", file=sys.stderr)
                return 1
            print("The TFDS datasets are not on disk; --quick uses mocked data (random words).")
            mock = True
    with tfds.testing.mock_data(num_examples=args.per_source) if mock else contextlib.nullcontext():
        if mock:
            args.download = True  # a no-op under mock_data: nothing is fetched
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
