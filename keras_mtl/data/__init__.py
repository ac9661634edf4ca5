"""Data for multi-task training: bundled real datasets, mixtures of sources, tf.data helpers.

Labels are dicts keyed by task label key; a missing label is the task's
missing marker (-1, or NaN for float labels), which the model masks.
`mixture()` combines sources that label different tasks and marks the
labels each source lacks; `from_pandas`/`from_tfds` make such sources.
"""

from keras_mtl.data import columns, files, sampling
from keras_mtl.data.bundled_mixture import bundled_mixture
from keras_mtl.data.census import census_income
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.data.fashion import fashion_mnist
from keras_mtl.data.mixing import concatenate, mixture
from keras_mtl.data.news20 import newsgroups
from keras_mtl.data.pandas_source import from_pandas
from keras_mtl.data.readers import read
from keras_mtl.data.pipeline import SetEpoch, from_columns, pipeline_options, shuffle_epoch
from keras_mtl.data.sampling import Annealed, Proportional, Temperature, Uniform, Weights
from keras_mtl.data.table import from_dataframe
from keras_mtl.data.text import text_vectorizer
from keras_mtl.data.tfds_source import from_tfds, store_as_tfds
from keras_mtl.data.tweets import trump_tweets

# Every loader takes batch_size=, validation_fraction=, limit= and seed=
# and returns a MultiTaskData.
DATASETS = {
    "census_income": census_income,
    "trump_tweets": trump_tweets,
    "fashion_mnist": fashion_mnist,
    "newsgroups": newsgroups,
}

__all__ = [
    "Annealed",
    "DATASETS",
    "MultiTaskData",
    "Proportional",
    "SetEpoch",
    "Temperature",
    "Uniform",
    "Weights",
    "bundled_mixture",
    "census_income",
    "columns",
    "concatenate",
    "fashion_mnist",
    "files",
    "from_columns",
    "from_dataframe",
    "from_pandas",
    "from_tfds",
    "mixture",
    "newsgroups",
    "pipeline_options",
    "read",
    "sampling",
    "shuffle_epoch",
    "store_as_tfds",
    "text_vectorizer",
    "trump_tweets",
]
