"""What a student pays per example for differing from its teacher on one task.

Heads output probabilities (sigmoid, softmax), so the logits that a
temperature divides are recovered from them: `log(p / (1 - p))` for a
sigmoid, `log(p)` for a softmax (a softmax's logits up to a constant, which
a softmax ignores). Probabilities are clipped to `[eps, 1 - eps]` first, as
Keras' cross-entropies on probabilities do.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_mtl.tasks import Task

# Keras' own clipping of probabilities in its cross-entropies.
_EPSILON = keras.config.epsilon()


def _bernoulli_kl(teacher_logits, student_logits):
    """KL(Bernoulli(sigmoid(t)) || Bernoulli(sigmoid(s))) per unit, from logits (stable)."""
    q = tf.sigmoid(teacher_logits)
    # log q - log p = softplus(-s) - softplus(-t); log(1-q) - log(1-p) = softplus(s) - softplus(t)
    return q * (tf.nn.softplus(-student_logits) - tf.nn.softplus(-teacher_logits)) + (1.0 - q) * (
        tf.nn.softplus(student_logits) - tf.nn.softplus(teacher_logits)
    )


def _sigmoid_logits(p):
    p = tf.clip_by_value(p, _EPSILON, 1.0 - _EPSILON)
    return tf.math.log(p) - tf.math.log1p(-p)


def _softmax_logits(p):
    return tf.math.log(tf.clip_by_value(p, _EPSILON, 1.0))


def kind(task: Task) -> str | None:
    """How a task's outputs are distilled: "bernoulli", "categorical", "regression", or None (not supported).

    Example:
    >>> from keras_mtl import tasks
    >>> [kind(t) for t in (tasks.Binary("a"), tasks.Multiclass("b", 3), tasks.Regression("c"))]
    ['bernoulli', 'categorical', 'regression']
    """
    name = type(task).__name__
    if name in ("Binary", "Multilabel"):
        return "bernoulli"
    if name == "Multiclass":
        return "categorical"
    if name == "Regression":
        return "regression"
    return None


def soft_loss(task: Task, teacher, student, temperature: float = 1.0, scale=None):
    """The distillation loss per example of `task`: shape (batch,).

    - Binary, Multilabel: the KL divergence between the teacher's and the
      student's Bernoulli distributions at `temperature` (logits divided by
      it), summed over labels, times `temperature**2` (Hinton et al. 2015:
      the soft gradients keep their size whatever the temperature).
    - Multiclass: the KL divergence between the softened softmax
      distributions, times `temperature**2`.
    - Regression: the task's own loss with the teacher's prediction as the
      label (z-scores for a normalised task, given its `scale`); the
      temperature does not apply.

    The loss is 0 where the student matches the teacher.

    Example:
    >>> from keras_mtl import tasks
    >>> loss = soft_loss(tasks.Binary("a"), tf.constant([[0.8]]), tf.constant([[0.5]]))
    >>> round(float(loss[0]), 4)  # 0.8 log(0.8/0.5) + 0.2 log(0.2/0.5)
    0.1927
    """
    teacher = tf.stop_gradient(tf.cast(teacher, student.dtype))
    way = kind(task)
    if way == "regression":
        if scale is not None:
            teacher, student = scale.standardize(teacher), scale.standardize(student)
        return tf.reduce_mean(task.unit_losses(teacher, student), axis=-1)
    t = float(temperature)
    if way == "bernoulli":
        units = _bernoulli_kl(_sigmoid_logits(teacher) / t, _sigmoid_logits(student) / t)
        return tf.reduce_sum(units, axis=-1) * (t * t)
    if way == "categorical":
        log_q = tf.nn.log_softmax(_softmax_logits(teacher) / t)
        log_p = tf.nn.log_softmax(_softmax_logits(student) / t)
        return tf.reduce_sum(tf.exp(log_q) * (log_q - log_p), axis=-1) * (t * t)
    raise ValueError(
        f"Task {task.name!r} ({type(task).__name__}) cannot be distilled: keras_mtl distils "
        "Binary, Multilabel, Multiclass and Regression tasks."
    )


__all__ = ["kind", "soft_loss"]
