"""Per-task explanations: which raw input columns drive each task, which are shared, what the experts do.

Example:
>>> import keras, numpy as np, keras_mtl as mtl
>>> m = mtl.models.shared_bottom(keras.Input((3,), name="x"),
...                              [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")])
>>> e = mtl.explain(m, {"x": np.ones((8, 3), "float32")})
>>> list(e.importance().index), list(e.importance().columns)
(['a', 'b'], ['x[0]', 'x[1]', 'x[2]'])
"""

from keras_mtl.explanations.experts import ExpertUsage, expert_usage
from keras_mtl.explanations.attributions import ExplainError, explain
from keras_mtl.explanations.explanation import Explanation, TokenAttributions

__all__ = ["ExpertUsage", "ExplainError", "Explanation", "TokenAttributions", "expert_usage", "explain"]
