"""The training step of gradient-based methods: per-task gradients, all-reduce, combine, apply.

Keras' TF optimizer always SUM-all-reduces the gradients it applies. The step
therefore (1) all-reduces what the method must see globally (the per-task
gradients, or for the representation mode only their Gram matrix), (2) asks
the method for combination weights computed from those global quantities,
identical on every replica, and (3) applies each replica's *local*
combination `sum_t w_t g_t^(replica)`, which the optimizer's sum turns into
exactly the one-device update.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _masking


def _flat(grads, variables):
    return tf.concat(
        [tf.reshape(tf.zeros_like(v) if g is None else tf.convert_to_tensor(g), [-1]) for g, v in zip(grads, variables)],
        axis=0,
    )


def _unflat(vector, variables):
    out, start = [], 0
    for v in variables:
        size = int(np.prod(v.shape))
        out.append(tf.reshape(vector[start : start + size], v.shape))
        start += size
    return out


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def per_task_gradients(tape, task_shares, targets, others=(), *, flat=True):
    """This replica's task gradients on `targets`, and the task-summed gradients on `others`.

    Returns the (T, P) matrix of each task's gradient on `targets` (variables,
    or tensors such as the shared representation), flattened, and the
    gradient of the summed shares on `others`, from the same backward passes:
    a task-specific layer only receives its own task's gradient, so summing
    over tasks gives it without one more pass through the heads. With
    `flat=False` the first result is instead, per task, the list of its
    float32 gradients on each target in the target's own shape.
    """
    rows, summed = [], [None] * len(others)
    for share in task_shares:
        grads = tape.gradient(share, list(targets) + list(others))
        if flat:
            rows.append(tf.cast(_flat(grads[: len(targets)], targets), tf.float32))
        else:
            rows.append([
                tf.cast(tf.zeros_like(t) if g is None else tf.convert_to_tensor(g), tf.float32)
                for g, t in zip(grads[: len(targets)], targets)
            ])
        summed = [_add(total, g) for total, g in zip(summed, grads[len(targets) :])]
    return (tf.stack(rows) if flat else rows), summed


def _gram(grads):
    """The (T, T) Gram matrix of T tasks' gradients, each a list of tensors (one per target).

    Pairwise sums of products over each tensor's own shape, not a matmul of
    flattened rows: flattening makes XLA copy every gradient into one layout
    (on MMoE's (batch, experts, units) representation that copying cost 20%
    of the step), while these reductions fuse with whatever made the
    gradients.
    """
    t = len(grads)
    entries = {}
    for i in range(t):
        for j in range(i, t):
            entries[i, j] = entries[j, i] = tf.add_n(
                [tf.reduce_sum(a * b) for a, b in zip(grads[i], grads[j])]
            )
    return tf.stack([tf.stack([entries[i, j] for j in range(t)]) for i in range(t)])


def _unscale(grads, loss_scale):
    # Before any product: squares of gradients of a mixed-precision loss scaled
    # by a large factor could overflow float32. XLA fuses the division in.
    return [[g / loss_scale for g in task] for task in grads]


def _combine(grads, w):
    """sum_t w_t g_t for each target, from per-task lists of gradients."""
    return [tf.add_n([w[t] * g[v] for t, g in enumerate(grads)]) for v in range(len(grads[0]))]


def gradient_train_step(model, data):
    """One optimizer step of `model` with its gradient-based weighting method."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    method = model.weighting
    with tf.GradientTape(persistent=True) as tape:
        if method.mode == "representation":
            y_pred, rep = model.call_with_representation(x, training=True)
        else:
            y_pred, rep = model(x, training=True), None
        losses, counts = model.task_losses(y, y_pred, sample_weight, x=x, training=True)
        # Gradients are taken of tensors made inside the tape.
        task_shares = [losses[t.name] for t in model.tasks]
        shares = tf.stack(task_shares)
        regularization = (
            _masking.per_replica_share(tf.add_n(model.losses)) if model.losses else None
        )
        # Under mixed precision the optimizer is a LossScaleOptimizer: it wants
        # gradients of the scaled loss (and unscales them itself). Methods must
        # see true gradients, so they get the scaled ones divided back.
        scaled = [model.optimizer.scale_loss(s) for s in task_shares]
        if regularization is not None:
            regularization = model.optimizer.scale_loss(regularization)
    loss_scale = tf.cast(model.optimizer.scale_loss(tf.constant(1.0)), tf.float32)
    global_losses = _masking.global_sum(shares)

    shared = model.shared_variables
    if not shared and rep is None:
        # A frozen trunk (models.extend, trunks.pretrained(train="frozen")): no shared
        # parameter for the method to combine task gradients on.
        raise ValueError(
            f"Weighting {type(method).__name__} combines the tasks' gradients on the shared trainable "
            f"parameters, and model {model.name!r} has none (its shared layers {list(model.shared_layers)} "
            "are frozen or weightless). "
            + (
                "Use mode='representation' to combine them on the shared representation, or a loss-based "
                "method (fixed, uncertainty, dwa, ...)."
                if model.representation
                else "Its tasks share no representation either (per-task adapters give each task its own), "
                "so their gradients cannot conflict: use a loss-based method (fixed, uncertainty, dwa, ...)."
            )
        )
    shared_ids = {id(v) for v in shared}
    own_ids = {id(v) for v in method.trainable_variables}
    others = [
        v for v in model.trainable_variables if id(v) not in shared_ids and id(v) not in own_ids
    ]

    if rep is not None:
        # One gradient per task on the representation (cheap: through the heads
        # only); the Gram matrix sums over examples, hence over replicas.
        rep_grads, other_grads = per_task_gradients(tape, scaled, [rep], others, flat=False)
        gram = _masking.global_sum(_gram(_unscale(rep_grads, loss_scale)))
        w = tf.stop_gradient(method.aggregate(gram, global_losses, True))
        combined_rep = tf.cast(_combine(rep_grads, w)[0], rep.dtype)
        shared_grads = tape.gradient(rep, shared, output_gradients=combined_rep)
    elif method.aggregate_vectors is not None:
        local, other_grads = per_task_gradients(tape, scaled, shared, others)
        total = _masking.global_sum(local) / loss_scale
        combined, w = method.aggregate_vectors(total, global_losses)
        # The optimizer sums replicas' gradients: hand each a 1/replicas share.
        shared_grads = _unflat(_masking.per_replica_share(combined * loss_scale), shared)
    else:
        local, other_grads = per_task_gradients(tape, scaled, shared, others, flat=False)
        # The Gram matrix of the global gradients (all-reduced first, then multiplied).
        gram = _gram(_unscale(_masking.global_sum(local), loss_scale))
        w = tf.stop_gradient(method.aggregate(gram, global_losses, True))
        shared_grads = _combine(local, w)
    shared_grads = [tf.cast(g, v.dtype) if g is not None else None for g, v in zip(shared_grads, shared)]

    if regularization is not None:
        shared_grads = [_add(g, r) for g, r in zip(shared_grads, tape.gradient(regularization, shared))]
        other_grads = [_add(g, r) for g, r in zip(other_grads, tape.gradient(regularization, others))]
    del tape

    model.optimizer.apply_gradients(zip(list(shared_grads) + list(other_grads), shared + others))
    total_share = tf.reduce_sum(w * shares) + (0.0 if regularization is None else regularization)
    model.track_step(losses, counts, w, total_share, x)
    return model.compute_metrics(x, y, y_pred, sample_weight)
