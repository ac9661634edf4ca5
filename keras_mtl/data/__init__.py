"""Data for multi-task training: bundled real datasets and tf.data helpers.

Labels are dicts keyed by task label key; a missing label is the task's
missing marker (-1, or NaN for float labels), which the model masks.
"""

from keras_mtl.data.census import census_income
from keras_mtl.data.dataset import MultiTaskData
from keras_mtl.data.pipeline import from_columns, pipeline_options

DATASETS = {"census_income": census_income}

__all__ = ["census_income", "from_columns", "pipeline_options", "MultiTaskData", "DATASETS"]
