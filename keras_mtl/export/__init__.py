"""Export for TF Serving: versioned atomic SavedModels and a TF-Serving-like check."""

from keras_mtl.export.saved_model import export_saved_model, read_metadata, versions
from keras_mtl.export.verify import VerificationError, verify

__all__ = ["export_saved_model", "read_metadata", "versions", "verify", "VerificationError"]
