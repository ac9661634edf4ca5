"""An embedding layer that reads only the rows it looks up."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mtl")
class SparseEmbedding(keras.layers.Embedding):
    """`keras.layers.Embedding` whose lookup reads only the looked-up rows of its table.

    Keras' `Embedding` looks ids up in a tensor read of the whole table
    (`ops.take(self.embeddings, ids)`). Once an optimizer has updated the
    table row by row (`optimizers.LazyAdam`'s scatters, or any sparse
    update), TensorFlow keeps the variable in copy-on-read mode, and every
    such dense read copies the entire table: a cost per step proportional to
    the table, which for a hashed id column of 2^20 rows dwarfs the model.
    This layer gathers from the variable itself (a `ResourceGather`), so a
    step touches only the rows of its batch. Outputs, gradients (a
    `tf.IndexedSlices`), saving and every argument are those of
    `keras.layers.Embedding`; quantized and LoRA-enabled layers use Keras'
    own lookup. `trunks.tabular` and `trunks.text` build their embeddings
    with it.

    Example:
    >>> import numpy as np
    >>> table = SparseEmbedding(4, 2, embeddings_initializer=keras.initializers.Constant(
    ...     [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    >>> table(np.array([3, 1])).numpy().tolist()
    [[3.0, 3.0], [1.0, 1.0]]
    """

    def call(self, inputs):
        if self.quantization_mode or self.lora_enabled:
            return super().call(inputs)
        if inputs.dtype not in (tf.int32, tf.int64):
            inputs = ops.cast(inputs, "int32")
        # `.value` is the tf.Variable itself (an Embedding never autocasts):
        # gathering from it is a sparse read.
        outputs = tf.gather(self.embeddings.value, inputs)
        return ops.cast(outputs, dtype=self.compute_dtype)
