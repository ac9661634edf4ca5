"""An image of a model's architecture (`keras.utils.plot_model`), when pydot and Graphviz are installed.

`keras-mtl train` saves it as `<log dir>/model.png`, where `keras-mtl
report` finds it. Neither pydot nor Graphviz is a dependency of keras_mtl:
without them the diagram is skipped with a note instead of failing the run.
"""

from __future__ import annotations

import os

import keras

from keras_mtl import _compat

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
    return _compat.graphviz_available()


# More raw inputs than this, each with its own lookup or normalisation layer,
# make a diagram too wide to read (census-income's 39 columns: 17,851 x 932 px).
MAX_DRAWN_INPUTS = 8


def save_diagram(model: keras.Model, path: str | os.PathLike) -> str | None:
    """Draws `model` (layer names and shapes, nested models expanded) to the PNG `path`.

    A `MultiTaskModel` with more than `MAX_DRAWN_INPUTS` raw inputs and a
    preprocessing front (`MultiTaskModel.preprocessing`) is drawn from the
    encoded features on: one box stands for the inputs and their lookups,
    and the layers that learn stay readable at page width.

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
    options = dict(show_shapes=True, show_layer_names=True, expand_nested=True, dpi=72)
    split = getattr(model, "preprocessing", None)
    if split is None or len(model.inputs) <= MAX_DRAWN_INPUTS:
        keras.utils.plot_model(model, to_file=path, **options)
        return path
    dot = keras.utils.model_to_dot(split.core, **options)
    # The core's inputs are named after inner tensors ("keras_tensor_71CLONE"); say what they hold.
    label = f"<b>encoded features</b> ({len(model.inputs)} raw inputs after the model's preprocessing layers)"
    for tensor in split.core.inputs:
        name = _compat.keras_history(tensor).operation.name
        for node in dot.get_nodes():
            if node.get_label():  # graph-wide "node" defaults have none
                node.set_label(node.get_label().replace(f"<b>{name}</b> (InputLayer)", label))
    dot.write(path, format="png")
    return path


__all__ = ["FILENAME", "available", "save_diagram"]
