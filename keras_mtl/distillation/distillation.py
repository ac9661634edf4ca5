"""`Distillation`: a student trained on its teachers' outputs as well as on the labels."""

from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _masking as masking
from keras_mtl._model import TEACHER_KEY
from keras_mtl.distillation.soft_losses import kind, soft_loss


def anneal(steps: int, start: float = 0.0, end: float = 1.0):
    """A label weight that moves linearly from `start` to `end` over `steps` optimizer steps, then stays.

    The default is teacher annealing (Clark et al. 2019, "BAM! Born-Again
    Multi-Task Networks"): the student learns first from its teachers, last
    from the labels. A Keras schedule: any `keras.optimizers.schedules`
    object works as a label weight too.

    Example:
    >>> schedule = anneal(100)
    >>> [round(float(schedule(s)), 2) for s in (0, 50, 100, 200)]
    [0.0, 0.5, 1.0, 1.0]
    """
    if int(steps) < 1:
        raise ValueError(f"anneal: steps must be >= 1, got {steps!r}.")
    for name, value in (("start", start), ("end", end)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"anneal: {name} is a label weight, in [0, 1]; got {value!r}.")
    # PolynomialDecay of power 1 is a linear ramp, whichever way it goes.
    return keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=float(start), decay_steps=int(steps), end_learning_rate=float(end), power=1.0
    )


def _outputs_of(model: keras.Model) -> dict:
    """`{output name: KerasTensor}` of a teacher model."""
    out = model.output
    if isinstance(out, Mapping):
        return dict(out)
    if isinstance(out, (list, tuple)):
        return dict(zip(model.output_names, out))
    return {model.output_names[0] if model.output_names else model.name: out}


class Distillation:
    """Knowledge distillation for a multi-task student, set at `compile(distillation=...)`.

    Each distilled task's training loss becomes
    `label_weight * label loss + (1 - label_weight) * teacher loss`, where
    the teacher loss (`soft_loss`) compares the student's output with the
    teacher's on every example of the batch, labelled or not, and the label
    loss is the task's own, over its labelled examples. Validation and
    `evaluate` report the label loss alone. Tasks no teacher covers train on
    their labels as before.

    Teachers run inside the training step, or their outputs come with the
    data: `precompute` adds them to the labels under the keys
    `teacher.<task>`, computed once for arrays in memory. A batch that
    carries a task's teacher output uses it, and no teacher runs for it.
    A teacher in the step reads the batch the student reads: with features
    encoded for the student (`MultiTaskData.encoded(student)`) it must share
    the student's preprocessing (built on the same feature space, or a copy
    of the student as `models.extend` makes); otherwise `precompute` its
    outputs from the raw features first.

    Args:
        teachers: a model whose outputs are named like the student's tasks
            (a larger multi-task model), or `{task: model}` (e.g. one
            single-task model per task; a model with several outputs gives
            the one named after the task). `None` when every batch carries
            the teacher outputs (then `tasks` names the tasks).
        temperature: softens both distributions (> 0; 1 is none). Regression
            tasks ignore it.
        label_weight: the weight of the label loss, in [0, 1]: one number,
            `{task: number}` (other tasks 0.5), or a schedule of the
            optimizer step such as `anneal(steps)`.
        tasks: the student tasks to distil; default every task a teacher has
            an output for.

    Example:
    >>> import keras, numpy as np, keras_mtl as mtl
    >>> tasks = [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")]
    >>> teacher = mtl.models.shared_bottom(keras.Input((4,)), tasks, trunk=mtl.trunks.mlp([32]))
    >>> student = mtl.models.shared_bottom(keras.Input((4,)), tasks, trunk=mtl.trunks.mlp([4]))
    >>> distillation = mtl.distillation.Distillation(teacher, temperature=2.0, label_weight=0.3)
    >>> student.compile(optimizer="adam", distillation=distillation)
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> y = {"a": (x[:, 0] > 0.5).astype("float32"), "b": np.full(64, -1.0, "float32")}
    >>> x, y = distillation.precompute(x, y)  # "b" has no labels: it learns from the teacher alone
    >>> sorted(y)
    ['a', 'b', 'teacher.a', 'teacher.b']
    >>> _ = student.fit(x, y, epochs=1, verbose=0)
    """

    def __init__(
        self,
        teachers: keras.Model | Mapping[str, keras.Model] | None,
        *,
        temperature: float = 1.0,
        label_weight: float | Mapping[str, float] | Callable = 0.5,
        tasks: list[str] | None = None,
    ):
        if isinstance(teachers, keras.Model):
            self._by_task = {name: teachers for name in _outputs_of(teachers)}
        elif isinstance(teachers, Mapping):
            bad = {k: type(v).__name__ for k, v in teachers.items() if not isinstance(v, keras.Model)}
            if bad:
                raise TypeError(f"Distillation: teachers must be Keras models; got {bad}.")
            self._by_task = dict(teachers)
        elif teachers is None:
            if not tasks:
                raise ValueError(
                    "Distillation(None): with no teacher models, name the tasks whose teacher outputs "
                    "every batch carries (tasks=[...])."
                )
            self._by_task = {}
        else:
            raise TypeError(
                f"Distillation: teachers must be a Keras model, a dict {{task: model}} or None; got "
                f"{type(teachers).__name__}."
            )
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
            raise ValueError(f"Distillation: temperature must be a number > 0, got {temperature!r}.")
        self.temperature = float(temperature)
        if isinstance(label_weight, Mapping):
            for task, value in label_weight.items():
                _check_weight(value, f"label_weight[{task!r}]")
            self.label_weight = dict(label_weight)
        elif callable(label_weight):
            self.label_weight = label_weight
        else:
            self.label_weight = _check_weight(label_weight, "label_weight")
        self._requested = list(tasks) if tasks is not None else None
        self.tasks: list[str] = []

    # ------------------------------------------------------------- attach
    def attach(self, model) -> None:
        """Checks the teachers against the student's tasks (`compile` calls it)."""
        names = [t.name for t in model.tasks]
        requested = self._requested if self._requested is not None else [n for n in self._by_task if n in names]
        unknown = sorted(set(requested) - set(names))
        if unknown:
            raise ValueError(f"Distillation names task(s) {unknown} the student does not have; its tasks are {names}.")
        if not requested:
            raise ValueError(
                f"Distillation: no teacher output is named like a student task; the teachers give "
                f"{sorted(self._by_task)}, the student's tasks are {names}. Pass {{task: model}} to pair them."
            )
        if isinstance(self.label_weight, Mapping):
            extra = sorted(set(self.label_weight) - set(requested))
            if extra:
                raise ValueError(f"Distillation: label_weight names task(s) {extra} that are not distilled ({requested}).")
        for name in requested:
            task = model.get_task(name)
            if kind(task) is None:
                raise ValueError(
                    f"Distillation: task {name!r} ({type(task).__name__}) cannot be distilled; keras_mtl "
                    "distils Binary, Multilabel, Multiclass and Regression tasks."
                )
            teacher = self._by_task.get(name)
            if teacher is None:
                continue
            outputs = _outputs_of(teacher)
            out = outputs.get(name) if name in outputs or len(outputs) != 1 else next(iter(outputs.values()))
            if out is None:
                raise ValueError(
                    f"Distillation: the teacher {teacher.name!r} for task {name!r} has outputs "
                    f"{sorted(outputs)}, none named {name!r}."
                )
            want = tuple(model.output[name].shape[1:])
            if tuple(out.shape[1:]) != want:
                raise ValueError(
                    f"Distillation: the teacher {teacher.name!r} gives task {name!r} outputs of shape "
                    f"{tuple(out.shape)}; the student's {name!r} output has shape {(None,) + want}."
                )
        self.tasks = list(requested)

    # ------------------------------------------------------------ targets
    def _teacher_output(self, name: str, outputs):
        """Task `name`'s output among a teacher's: the one named after it, or its only one."""
        if not isinstance(outputs, Mapping):
            return outputs
        if name in outputs:
            return outputs[name]
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        raise ValueError(f"Distillation: the teacher of task {name!r} has outputs {sorted(outputs)}, none named {name!r}.")

    def teacher_outputs(self, x, y: Mapping | None = None, tasks: list[str] | None = None) -> dict:
        """`{task: teacher output}` for the batch `x`: from `y`'s `teacher.<task>` entries, else from the teachers.

        `tasks` defaults to the distilled tasks of the student this was compiled with.
        """
        y = y if isinstance(y, Mapping) else {}
        found, ran = {}, {}
        for name in self.tasks if tasks is None else tasks:
            if TEACHER_KEY + name in y:
                found[name] = y[TEACHER_KEY + name]
                continue
            teacher = self._by_task.get(name)
            if teacher is None:
                raise ValueError(
                    f"Distillation: the batch has no teacher output for task {name!r} (label key "
                    f"{TEACHER_KEY + name!r}) and no teacher model was given for it; add them with "
                    "Distillation.precompute."
                )
            if id(teacher) not in ran:
                _check_readable(teacher, name, x)
                ran[id(teacher)] = teacher(x, training=False)
            found[name] = self._teacher_output(name, ran[id(teacher)])
        return found

    def precompute(self, x, y=None, *, batch_size: int = 1024):
        """The data with the teachers' outputs added to its labels as `teacher.<task>`.

        Arrays in memory (`x`, and `y` a dict of label arrays or None) are
        run through each teacher once, with `predict`; returns `(x, y)`. A
        `tf.data.Dataset` of `(features, labels)` batches gets a map that
        runs the teachers as the pipeline reads each batch (off the training
        step; `.cache()` it to run them once); returns the dataset.
        """
        tasks = self.tasks or self._requested or list(self._by_task)
        missing = [n for n in tasks if n not in self._by_task]
        if missing:
            raise ValueError(f"Distillation.precompute: no teacher model for task(s) {missing}.")
        if isinstance(x, tf.data.Dataset):
            def add(features, labels, *rest):
                outputs = self.teacher_outputs(features, {}, tasks)
                labels = dict(labels) | {TEACHER_KEY + n: tf.cast(v, tf.float32) for n, v in outputs.items()}
                return (features, labels, *rest)

            return x.map(add, num_parallel_calls=tf.data.AUTOTUNE)
        labels = dict(y) if y is not None else {}
        predicted = {}
        for name in tasks:
            teacher = self._by_task[name]
            if id(teacher) not in predicted:
                predicted[id(teacher)] = teacher.predict(x, batch_size=batch_size, verbose=0)
            labels[TEACHER_KEY + name] = np.asarray(self._teacher_output(name, predicted[id(teacher)]), "float32")
        return x, labels

    # ---------------------------------------------------------------- loss
    def weight_for(self, name: str, step):
        """The label weight of task `name` at optimizer step `step`."""
        weight = self.label_weight
        if isinstance(weight, Mapping):
            return tf.constant(weight.get(name, 0.5), tf.float32)
        if callable(weight):
            return tf.cast(weight(step), tf.float32)
        return tf.constant(weight, tf.float32)

    def mix(self, model, x, y, y_pred, losses: dict, counts: dict) -> tuple[dict, dict]:
        """The per-task losses with each distilled task's teacher loss mixed in (training steps only)."""
        outputs = self.teacher_outputs(x, y)
        step = model.optimizer.iterations if model.optimizer is not None else 0
        losses, counts = dict(losses), dict(counts)
        # Every distilled task averages over the same examples: one count (an all-reduce
        # under a strategy) serves them all.
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        examples = masking.global_sum(tf.cast(batch, tf.float32))
        for name in self.tasks:
            task = model.get_task(name)
            pred = y_pred[name]
            units = soft_loss(task, outputs[name], pred, self.temperature, model._target_scales.get(name))
            soft = tf.math.divide_no_nan(tf.reduce_sum(units), tf.cast(examples, units.dtype))
            alpha = tf.cast(self.weight_for(name, step), soft.dtype)
            losses[name] = alpha * losses[name] + (1.0 - alpha) * soft
            # The epoch's loss then averages over every example, as the teacher term does.
            counts[name] = examples
        return losses, counts


def _check_readable(teacher: keras.Model, task: str, x) -> None:
    """Raises naming the teacher unless it takes the batch `x`: its raw inputs, or its own encoding of them."""
    wants = teacher.input
    if not (isinstance(x, Mapping) and isinstance(wants, Mapping)) or set(wants) <= set(x):
        return
    split = getattr(teacher, "preprocessing", None)
    if split is not None and split.accepts(x):
        return
    raise ValueError(
        f"Distillation: the teacher {teacher.name!r} of task {task!r} cannot read the training batch: "
        f"it takes {sorted(wants)}, the batch holds {sorted(x)} (features encoded for the student's own "
        "preprocessing?). Train on the raw features (data.train rather than data.encoded(student).train), or "
        "add the teacher's outputs from the raw features first: Distillation.precompute."
    )


def _check_weight(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"Distillation: {what} must be a number in [0, 1], got {value!r}.")
    return float(value)


__all__ = ["Distillation", "anneal"]
