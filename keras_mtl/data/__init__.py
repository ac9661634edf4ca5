"""Data for multi-task training: bundled real datasets, mixtures of sources, tf.data helpers.

Labels are dicts keyed by task label key; a missing label is the task's
missing marker (-1, or NaN for float labels), which the model masks.
`mixture()` combines sources that label different tasks and marks the
labels each source lacks; `from_pandas`/`from_tfds` make such sources.
`datasets` names the loaders a run config can use (`register` adds yours).
"""

from keras_mtl.data import columns, datasets, files, sampling
from keras_mtl.data.dataset_mixture import bundled_mixture
from keras_mtl.data.census import census_income
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.data.fashion import fashion_mnist
from keras_mtl.data.impressions import simulated_impressions
from keras_mtl.data.mixing import concatenate, mixture
from keras_mtl.data.news20 import newsgroups
from keras_mtl.data.pandas_source import from_pandas
from keras_mtl.data.readers import read
from keras_mtl.data.pipeline import from_columns, pipeline_options, shuffle_epoch
from keras_mtl.data.sampling import Annealed, Proportional, Temperature, Uniform, Weights
from keras_mtl.data.table import from_dataframe
from keras_mtl.data.text import text_vectorizer
from keras_mtl.data.tfds_source import from_tfds, store_as_tfds
from keras_mtl.data.tweets import trump_tweets

__all__ = [
    "Annealed",
    "MultiTaskData",
    "Proportional",
    "Temperature",
    "Uniform",
    "Weights",
    "bundled_mixture",
    "census_income",
    "columns",
    "concatenate",
    "datasets",
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
    "simulated_impressions",
    "store_as_tfds",
    "text_vectorizer",
    "trump_tweets",
]
