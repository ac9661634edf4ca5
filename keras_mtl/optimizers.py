"""Optimizers for models with large embedding tables: `LazyAdam`; the optimizers a run config names.

Keras 3's `Adam` updates every row of a variable and of its two moment
tables at every step. For an embedding table of hashed ids
(`FeatureSpace.hashed(num_bins=2**20)`) a batch looks up a few hundred
rows, and the gradient of the lookup reaches the optimizer as a
`tf.IndexedSlices` naming those rows; `LazyAdam` updates only them (and
their moments), the other rows keep their values and moments untouched.
This is the LazyAdam of TensorFlow Addons and PyTorch's `SparseAdam`.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_mtl import _compat
from keras_mtl._sorting import sorted_runs
from keras_mtl._registry import Registry

__all__ = ["LazyAdam", "available", "get", "register"]


def _tf_variable(variable):
    """The `tf.Variable` under a Keras variable (itself for a `tf.Variable`)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _runs(indices):
    """`(order, sorted_indices, run, is_start)`: `indices` sorted, and its runs of equal ids numbered."""
    order, run, is_start = sorted_runs(indices)
    return order, tf.gather(indices, order), run, is_start


def _run_totals(values, run, n):
    """Sum of `values` over each run, gathered back to every element of the run."""
    totals = tf.math.unsorted_segment_sum(values, run, num_segments=n)
    return tf.gather(totals, run)


def sum_duplicates(gradient: tf.IndexedSlices) -> tf.IndexedSlices:
    """`gradient` with its indices sorted and the values of repeated ids summed.

    The sum for each id stands at its first occurrence and the repeats
    carry zeros, so the result has the same dense value as `gradient`, the
    same (static) number of slices, and the norm of its values is the norm
    of the dense gradient (what clipping needs).

    Example:
    >>> g = tf.IndexedSlices(tf.constant([[1.0], [2.0], [4.0]]), tf.constant([5, 2, 5]))
    >>> s = sum_duplicates(g)
    >>> s.indices.numpy().tolist(), s.values.numpy().ravel().tolist()
    ([2, 5, 5], [2.0, 5.0, 0.0])
    """
    order, sorted_indices, run, is_start = _runs(gradient.indices)
    values = tf.gather(gradient.values, order)
    totals = _run_totals(values, run, tf.shape(values)[0])
    keep = tf.reshape(is_start, [-1] + [1] * (len(values.shape) - 1))
    values = tf.where(keep, totals, tf.zeros_like(totals))
    return tf.IndexedSlices(values, sorted_indices, gradient.dense_shape)


class _UnscalableSlices(tf.IndexedSlices):
    """IndexedSlices that `Optimizer.apply` can divide by `loss_scale_factor`."""

    def __truediv__(self, scale):
        return tf.IndexedSlices(self.values / scale, self.indices, self.dense_shape)


@keras.saving.register_keras_serializable(package="keras_mtl")
class LazyAdam(keras.optimizers.Adam):
    """Adam that, for embedding lookups, updates only the rows the batch used.

    Use it for models with embedding tables of ids (`FeatureSpace.hashed`,
    `embedded_categorical`, `text`, `token_list`): Keras' `Adam` updates
    every row of a table and of its two moment tables at every step, so a
    step's cost grows with the size of the table; `LazyAdam` touches only
    the rows a batch looked up.

    For a gradient that is a `tf.IndexedSlices` (what a
    `keras.layers.Embedding` lookup gives), repeated ids (the same id twice
    in a batch, or the slices of several replicas concatenated by a
    `MirroredStrategy` all-reduce) are summed first, exactly as a dense
    gradient sums them, then only those rows of the first and second moment
    and of the variable are updated with Adam's formulas (bias correction
    from the global step, `iterations`). Rows absent from the batch keep
    their moments and values, so, unlike dense Adam, momentum does not move
    them (the TensorFlow Addons LazyAdam / PyTorch `SparseAdam` semantics).
    Dense gradients get exactly `keras.optimizers.Adam`'s update. It
    compiles under XLA (`jit_compile=True`).

    Supported: `amsgrad` (the running maximum of the second moment is kept
    for the touched rows), `clipnorm`, `global_clipnorm` and `clipvalue`
    (applied to the duplicate-summed slices, so they equal clipping the dense
    gradient), `loss_scale_factor` and the `LossScaleOptimizer` that
    `mixed_float16` wraps it in. Not supported: `weight_decay`, which Keras
    applies to every row of every variable at every step (a `ValueError` at
    construction; use `keras.optimizers.AdamW` or a regularizer on the dense
    layers). Two options work but cost a dense pass over every table at every
    step: `gradient_accumulation_steps` (Keras accumulates into dense tensors,
    so the update is exactly dense Adam's) and `use_ema` (the update is lazy,
    the moving average is updated for every row).

    Args:
        learning_rate: as in `keras.optimizers.Adam`, and so are `beta_1`,
            `beta_2`, `epsilon` and `amsgrad`.
        **kwargs: the other arguments of `keras.optimizers.Adam`
            (`clipnorm`, `name`, ...), except `weight_decay`.

    Example (`model.compile(optimizer=LazyAdam(1e-3))`, or
    `train.optimizer: lazy_adam` in a `keras-mtl train` config):
    >>> import numpy as np
    >>> table = keras.layers.Embedding(4, 2, embeddings_initializer="ones")
    >>> with tf.GradientTape() as tape:
    ...     loss = keras.ops.sum(table(np.array([2, 2])))  # id 2, twice
    >>> grads = tape.gradient(loss, table.trainable_variables)
    >>> type(grads[0]).__name__
    'IndexedSlices'
    >>> _ = LazyAdam(learning_rate=0.1).apply_gradients(zip(grads, table.trainable_variables))
    >>> np.round(table.embeddings.numpy().astype(float), 3).tolist()  # only row 2 moved
    [[1.0, 1.0], [1.0, 1.0], [0.9, 0.9], [1.0, 1.0]]
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        weight_decay=None,
        name="lazy_adam",
        **kwargs,
    ):
        if weight_decay is not None:
            raise ValueError(
                f"LazyAdam does not support weight_decay (got {weight_decay!r}): Keras applies it "
                "to every row of every variable at every step, which is the dense update LazyAdam "
                "avoids. Use keras.optimizers.AdamW, or a kernel_regularizer on the dense layers."
            )
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            name=name,
            **kwargs,
        )

    # --------------------------------------------------------------- update
    def update_step(self, gradient, variable, learning_rate):
        """Adam's update; for `tf.IndexedSlices`, only on the rows they name."""
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        self._sparse_update_step(gradient, variable, learning_rate)

    def _sparse_update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)

        m, v, v_hat = (_tf_variable(s) if s is not None else None for s in _compat.adam_slots(self, variable))
        var = _tf_variable(variable)

        # Every element gets its id's total: repeated ids compute (and later
        # write) identical rows, so the order of the scatters does not matter.
        order, indices, run, _ = _runs(gradient.indices)
        values = tf.gather(tf.cast(gradient.values, dtype), order)
        grad = _run_totals(values, run, tf.shape(values)[0])

        # The same expressions as Adam.update_step, on the gathered rows.
        m_rows = tf.gather(m, indices)
        v_rows = tf.gather(v, indices)
        m_rows = ops.add(m_rows, ops.multiply(ops.subtract(grad, m_rows), 1 - self.beta_1))
        v_rows = ops.add(v_rows, ops.multiply(ops.subtract(ops.square(grad), v_rows), 1 - self.beta_2))
        m.scatter_update(tf.IndexedSlices(m_rows, indices))
        v.scatter_update(tf.IndexedSlices(v_rows, indices))
        if self.amsgrad:
            v_rows = ops.maximum(tf.gather(v_hat, indices), v_rows)
            v_hat.scatter_update(tf.IndexedSlices(v_rows, indices))
        step = ops.divide(ops.multiply(m_rows, alpha), ops.add(ops.sqrt(v_rows), self.epsilon))
        var.scatter_update(tf.IndexedSlices(ops.subtract(tf.gather(var, indices), step), indices))

    # ------------------------------------- where Keras would densify slices
    def apply(self, grads, trainable_variables=None):
        # `Optimizer.apply` divides every gradient by `loss_scale_factor`, and
        # `tf.IndexedSlices` has no division: Keras' own Adam raises a
        # TypeError on an embedding gradient there.
        if self.loss_scale_factor is not None:
            grads = [
                _UnscalableSlices(g.values, g.indices, g.dense_shape) if isinstance(g, tf.IndexedSlices) else g
                for g in grads
            ]
        return super().apply(grads, trainable_variables)

    def _clip_gradients(self, grads):
        # Keras' clipping by value or global norm turns slices into dense
        # tensors (and `tf.clip_by_norm` on slices with repeated ids would
        # clip by the wrong norm): clip the duplicate-summed slices instead.
        clipping = any(c is not None and c > 0 for c in (self.clipnorm, self.global_clipnorm, self.clipvalue))
        if not clipping or not any(isinstance(g, tf.IndexedSlices) for g in grads):
            return super()._clip_gradients(grads)
        grads = [sum_duplicates(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if self.clipnorm and self.clipnorm > 0:
            return [None if g is None else _compat.clip_by_norm(self, g) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            # Keras' clip_by_global_norm, with the slices' values standing for them.
            values = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads if g is not None]
            norm = ops.sqrt(ops.sum(ops.stack([ops.sum(ops.square(g)) for g in values])))
            clip = self.global_clipnorm
            scale = clip * ops.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
            return [_scaled(g, scale) for g in grads]
        c = self.clipvalue
        return [_map_values(g, lambda x: ops.clip(x, -c, c)) for g in grads]


def _map_values(g, fn):
    if g is None:
        return None
    if isinstance(g, tf.IndexedSlices):
        return tf.IndexedSlices(fn(g.values), g.indices, g.dense_shape)
    return fn(g)


def _scaled(g, scale):
    return _map_values(g, lambda x: x * ops.cast(scale, x.dtype))


_OPTIMIZERS = Registry("optimizer")


def register(name: str, cls: type | None = None):
    """Makes an optimizer class available as `name`, to `get` and to a run config's `train.optimizer`.

    Use it as a decorator or call it with the class; it is built as
    `cls(learning_rate=...)`.

    Example:
    >>> register("nadam", keras.optimizers.Nadam) is keras.optimizers.Nadam
    True
    """
    return _OPTIMIZERS.register(name, cls)


def get(name: str, **kwargs) -> keras.optimizers.Optimizer:
    """The optimizer registered as `name`, built with `kwargs`.

    Example:
    >>> type(get("lazy_adam", learning_rate=0.01)).__name__
    'LazyAdam'
    """
    return _OPTIMIZERS.get(name)(**kwargs)


def available() -> list[str]:
    """Names of the optimizers, for `get` and a run config's `train.optimizer`.

    Example:
    >>> {"adam", "lazy_adam"} <= set(available())
    True
    """
    return _OPTIMIZERS.available()


for _name, _cls in (
    ("adam", keras.optimizers.Adam),
    ("adamw", keras.optimizers.AdamW),
    ("sgd", keras.optimizers.SGD),
    ("rmsprop", keras.optimizers.RMSprop),
    ("lazy_adam", LazyAdam),
):
    register(_name, _cls)
