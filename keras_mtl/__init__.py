"""keras_mtl: multi-task learning for Keras 3 on TensorFlow.

Example:
>>> import keras, keras_mtl as mtl
>>> tasks = [mtl.tasks.Binary("click"), mtl.tasks.Binary("purchase")]
>>> model = mtl.models.shared_bottom(keras.Input((8,)), tasks)
>>> model.compile(optimizer="adam")
"""

__version__ = "0.1.0"

from keras_mtl import layers, tasks, trunks, weighting  # noqa: E402
from keras_mtl._model import MultiTaskModel  # noqa: E402
from keras_mtl import models  # noqa: E402
from keras_mtl import data, export  # noqa: E402
# The modules the README reaches as `mtl.<module>` after `import keras_mtl as mtl`.
from keras_mtl import callbacks, config, diagnostics, diagram, distribute, saving  # noqa: E402
from keras_mtl import optimizers, preprocessing  # noqa: E402
from keras_mtl import comparison  # noqa: E402
from keras_mtl.comparison import compare  # noqa: E402
from keras_mtl import calibration, distillation, explanations  # noqa: E402
from keras_mtl.explanations import explain  # noqa: E402

__all__ = [
    "MultiTaskModel",
    "calibration",
    "callbacks",
    "compare",
    "comparison",
    "config",
    "data",
    "diagnostics",
    "diagram",
    "distillation",
    "distribute",
    "explain",
    "explanations",
    "export",
    "layers",
    "models",
    "optimizers",
    "preprocessing",
    "saving",
    "tasks",
    "trunks",
    "weighting",
]
