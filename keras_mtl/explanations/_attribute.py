"""Path attributions of every task at once, over batches of examples.

Integrated gradients (Sundararajan et al., 2017) credit input i of example x
with (x_i - b_i) * integral_0^1 df/dx_i(b + a (x - b)) da, for a baseline b;
the credits sum to f(x) - f(b) (completeness). The integral is taken by
Gauss-Legendre quadrature: `steps` nodes per example, all examples and nodes
of a chunk in one forward pass, and one backward pass per task on the same
tape. `gradient_x_input` is the one-node rule at a = 1: (x - b) * df/dx(x),
exact for a model linear in its entries and a first-order guess otherwise.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

METHODS = ("integrated_gradients", "gradient_x_input")


def call(core, tensors: list):
    """`core` on its input tensors; a one-input model takes the tensor itself, as it was built."""
    return core(tensors[0] if len(tensors) == 1 else tensors, training=False)


def path_nodes(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The interpolation points a in [0, 1] and their weights (summing to 1).

    Example:
    >>> a, w = path_nodes("integrated_gradients", 2)
    >>> np.round(a, 4).tolist(), w.tolist()
    ([0.2113, 0.7887], [0.5, 0.5])
    >>> path_nodes("gradient_x_input", 32)
    (array([1.]), array([1.]))
    """
    if method == "gradient_x_input":
        return np.ones(1), np.ones(1)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1.0) / 2.0, weights / 2.0


def _spec(tensor) -> tf.TensorSpec:
    return tf.TensorSpec([None, *tensor.shape[1:]], tf.as_dtype(tensor.dtype))


def attribution_function(core, entries, fixed, picks, alphas: np.ndarray, weights: np.ndarray):
    """A traced function `(entries, baselines, fixed, targets) -> ({task: [credits per entry]}, f(x), f(b))`.

    `entries` and `fixed` are the KerasTensors where the model is cut; the
    function takes values shaped like them, for any batch size: the entries'
    values and their baselines, the fixed tensors at the example's values,
    and `targets` `{task: (batch,) int32}`, the output unit explained per
    example, for each task in `picks`. f(x) and f(b) are `{task: (batch,)}`
    values of those units.
    """
    m = len(alphas)
    a = tf.constant(alphas, tf.float32)
    w = tf.constant(weights, tf.float32)

    def unit(outputs, task, targets, repeat):
        out = tf.reshape(tf.cast(outputs[task], tf.float32), (tf.shape(outputs[task])[0], -1))
        index = tf.repeat(targets[task], repeat) if repeat > 1 else targets[task]
        return tf.gather(out, index, axis=1, batch_dims=1)

    # One trace for every chunk size: the batch dimension is left open.
    signature = [
        [_spec(t) for t in entries],
        [_spec(t) for t in entries],
        [_spec(t) for t in fixed],
        {task: tf.TensorSpec([None], tf.int32) for task in picks},
    ]

    @tf.function(autograph=False, input_signature=signature)
    def run(entries, baselines, fixed, targets):
        batch = tf.shape(entries[0])[0]
        paths = []
        for x, b in zip(entries, baselines):
            # (batch, m, ...) -> (batch * m, ...): example-major, so row r is example r // m.
            shape = tf.concat([[batch * m], tf.shape(x)[1:]], 0)
            scale = tf.reshape(a, [1, m] + [1] * (len(x.shape) - 1))
            path = b[:, None] + tf.cast(scale, x.dtype) * (x - b)[:, None]
            paths.append(tf.reshape(path, shape))
        tiled = [tf.repeat(f, m, axis=0) for f in fixed]
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(paths)
            outputs = call(core, paths + tiled)
            chosen = {task: unit(outputs, task, targets, m) for task in picks}
        result = {}
        for task in picks:
            grads = tape.gradient(chosen[task], paths, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            credits = []
            for x, b, g in zip(entries, baselines, grads):
                g = tf.reshape(tf.cast(g, tf.float32), tf.concat([[batch, m], tf.shape(x)[1:]], 0))
                mean = tf.tensordot(w, tf.transpose(g, [1, 0] + list(range(2, len(x.shape) + 1))), 1)
                credits.append(mean * tf.cast(x - b, tf.float32))
            result[task] = credits
        del tape
        at_x = call(core, list(entries) + list(fixed))
        at_b = call(core, list(baselines) + list(fixed))
        return (
            result,
            {task: unit(at_x, task, targets, 1) for task in picks},
            {task: unit(at_b, task, targets, 1) for task in picks},
        )

    return run
