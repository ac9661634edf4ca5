"""What the exported model answers: the serving input specs and the serving function.

The same `serve` function is traced into the SavedModel and called on the
Keras model by `verify`, so "the export answers like the model" is checked
against one definition of the answer.
"""

from __future__ import annotations

from typing import Mapping

import keras
import tensorflow as tf


def input_specs(model: keras.Model) -> dict[str, tf.TensorSpec]:
    """One `tf.TensorSpec` per model input, named after it, batch-first.

    A Keras input of shape (None, 1) (one value per example, as
    `FeatureSpace` makes them) is served as shape (None,): clients send one
    scalar per example and feature.

    Example:
    >>> x = keras.Input((1,), name="age")
    >>> input_specs(keras.Model(x, keras.layers.Dense(2)(x)))["age"].shape
    TensorShape([None])
    """
    specs = {}
    for tensor in model.inputs:
        name = tensor.name
        shape = list(tensor.shape)
        if shape[1:] == [1]:
            shape = [None]
        specs[name] = tf.TensorSpec([None] + shape[1:], tf.as_dtype(tensor.dtype), name=name)
    return specs


def model_input_structure(model: keras.Model, features: Mapping[str, tf.Tensor]):
    """Maps named serving inputs back to the structure the model was built on."""

    def pick(tensor):
        value = tf.convert_to_tensor(features[tensor.name])
        if value.shape.rank == len(tensor.shape) - 1:
            value = tf.expand_dims(value, -1)
        return value

    return keras.tree.map_structure(pick, model.input)


def serve(model: keras.Model, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The serving answer: one output per task, keyed by task name.

    Single-unit outputs (binary probabilities, scalar regressions) are
    returned as shape (batch,) so that a REST response reads
    `{"income": 0.93, ...}` per instance.
    """
    outputs = model(model_input_structure(model, features), training=False)
    return {
        name: tf.squeeze(value, -1) if value.shape[-1] == 1 and value.shape.rank == 2 else value
        for name, value in outputs.items()
    }
