"""An image of a model's architecture (`keras.utils.plot_model`), when pydot and Graphviz are installed.

`keras-mtl train` saves it as `<log dir>/model.png`, where `keras-mtl
report` finds it. Neither pydot nor Graphviz is a dependency of keras_mtl:
without them the diagram is skipped with a note instead of failing the run.
"""

from __future__ import annotations

import os

import keras

FILENAME = "model.png"
MISSING = (
    "No architecture diagram: keras.utils.plot_model needs pydot and Graphviz's `dot` "
    "(pip install pydot; apt-get install graphviz) where the model is trained."
)


def available() -> bool:
    """Whether `keras.utils.plot_model` can draw here (pydot importable and Graphviz's `dot` runs).

    Example:
    >>> isinstance(available(), bool)
    True
    """
    # The check plot_model itself makes (it raises instead of returning False).
    from keras.src.utils.model_visualization import check_graphviz

    return bool(check_graphviz())


def save_diagram(model: keras.Model, path: str | os.PathLike) -> str | None:
    """Draws `model` (layer names and shapes, nested models expanded) to the PNG `path`.

    Returns the path, or None when pydot or Graphviz is missing (see
    `MISSING`); any other failure raises.

    Example:
    >>> import tempfile, keras_mtl as mtl
    >>> m = mtl.models.shared_bottom(keras.Input((3,)), [mtl.tasks.Binary("a")])
    >>> out = save_diagram(m, os.path.join(tempfile.mkdtemp(), FILENAME))
    >>> out is None or os.path.isfile(out)
    True
    """
    if not available():
        return None
    path = os.fspath(path)
    keras.utils.plot_model(
        model, to_file=path, show_shapes=True, show_layer_names=True, expand_nested=True, dpi=72
    )
    return path
