"""Calibrated probabilities: fit Platt scaling or isotonic maps on held-out data, serve them in the graph.

Example:
>>> import keras, numpy as np, keras_mtl as mtl
>>> m = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Binary("click")])
>>> x = np.random.default_rng(0).normal(size=(128, 2)).astype("float32")
>>> calibrated = mtl.calibration.calibrate(m, ({"x": x}, {"click": (x[:, 0] > 0).astype("float32")}), method="isotonic")
>>> sorted(calibrated.calibration["click"]["after"])[:3]
['bins', 'confidence', 'count']
"""

from keras_mtl.calibration.calibrated_model import calibrate
from keras_mtl.calibration.fitting import fit_isotonic, fit_platt, pool_adjacent_violators
from keras_mtl.calibration.layer import Calibration
from keras_mtl.calibration.metrics import ExpectedCalibrationError, group_auc, reliability
from keras_mtl.calibration.pictures import reliability_figure, save_calibration

__all__ = [
    "Calibration",
    "ExpectedCalibrationError",
    "calibrate",
    "fit_isotonic",
    "fit_platt",
    "group_auc",
    "pool_adjacent_violators",
    "reliability",
    "reliability_figure",
    "save_calibration",
]
