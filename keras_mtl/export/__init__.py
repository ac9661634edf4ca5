"""Export for TF Serving: versioned atomic SavedModels with per-task and tf.Example
signatures, warmup requests, an op lint, `models.config` files, a TF-Serving-like
check of every signature, and clients that send DataFrames with the dtypes the
export takes (`request`, `Predictor`, `predict`)."""

from keras_mtl.export.batching import batching_parameters
from keras_mtl.export.client import ExportError, Predictor, predict, request, resolve
from keras_mtl.export.metadata import read_metadata
from keras_mtl.export.serving_config import ServingConfigError, model_config, model_entry, read_model_config
from keras_mtl.export.op_lint import OpLintError
from keras_mtl.export.samples import RequestError
from keras_mtl.export.saved_model import export_saved_model, versions
from keras_mtl.export.verification import VerificationError, verify

__all__ = [
    "batching_parameters",
    "export_saved_model",
    "ExportError",
    "model_config",
    "model_entry",
    "OpLintError",
    "predict",
    "Predictor",
    "read_metadata",
    "read_model_config",
    "request",
    "RequestError",
    "resolve",
    "ServingConfigError",
    "versions",
    "verify",
    "VerificationError",
]
