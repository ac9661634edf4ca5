"""Export for TF Serving: versioned atomic SavedModels with per-task and tf.Example
signatures, warmup requests, an op lint, `models.config` files, a TF-Serving-like
check of every signature, clients that send DataFrames with the dtypes the
export takes (`request`, `Predictor`, `predict`), and int8 / float16 compressed
exports (`export_saved_model(..., quantize=...)`, `quantized_copy`), and the
latency of a served call (`serving_latency`)."""

from keras_mtl.export.batching import batching_parameters
from keras_mtl.export.client import ExportError, Predictor, predict, request, resolve
from keras_mtl.export.latency import serving_latency
from keras_mtl.export.metadata import read_metadata
from keras_mtl.export.serving_config import ServingConfigError, model_config, model_entry, read_model_config
from keras_mtl.export.op_lint import OpLintError
from keras_mtl.export.quantization import QuantizationError, QuantizedCopy, quantized_copy
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
    "QuantizationError",
    "QuantizedCopy",
    "quantized_copy",
    "read_metadata",
    "read_model_config",
    "request",
    "RequestError",
    "resolve",
    "ServingConfigError",
    "serving_latency",
    "versions",
    "verify",
    "VerificationError",
]
