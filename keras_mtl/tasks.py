"""Task specifications: what each output predicts, how it is scored, how it is weighted.

A task is the one name that runs through keras_mtl: it is the label key in the
data, the output name of the model, the prefix of its logs (`income_loss`,
`income_auc`), the key of its serving output and its TensorBoard tag.

Missing labels are part of the contract. Each task type has a marker that means
"this example has no label for me" (see `Task.missing`); the model turns it into
a zero weight, so users never build sample-weight dicts by hand:

| task        | label                          | missing marker              |
|-------------|--------------------------------|-----------------------------|
| Binary      | 0/1, shape (batch,) or (b, 1)  | -1 or NaN                   |
| Multiclass  | class id int, shape (batch,)   | -1 (or NaN for float ids)   |
| Multilabel  | multi-hot, shape (batch, L)    | -1 or NaN, per label        |
| Regression  | number, shape (batch, units)   | NaN, per value              |
| Tagging     | tag id per token (batch, T)    | -1, per token (padding too) |
"""

from __future__ import annotations

import re
import typing

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _compat, _heads
from keras_mtl._registry import Registry

__all__ = [
    "Binary",
    "Multiclass",
    "Multilabel",
    "Ranking",
    "Regression",
    "Tagging",
    "TargetMoments",
    "Task",
    "available",
    "check_unique",
    "get",
    "register",
    "validate_name",
]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

# Thresholds of every AUC keras_mtl logs. Keras' default, 200, buckets
# probabilities by 0.005: on census-income more than half the test rows score
# below 0.005, fall into one bucket and go unranked, so the logged AUC read
# 0.0015-0.0024 below the exact one, by an amount that differs between
# models (and so reorders them). 2,000 reads within 0.0001 of the exact AUC
# there at no measurable cost (evenly spaced thresholds are bucketed, not
# compared one by one).
_AUC_THRESHOLDS = 2000


def validate_name(name: typing.Any, what: str = "task") -> str:
    """Checks that `name` is safe as an output key, log prefix, signature key and file name.

    Example:
    >>> validate_name("income")
    'income'
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"Invalid {what} name {name!r}: use a letter followed by up to 63 "
            "letters, digits or underscores (it becomes a Keras output name, a "
            "TensorBoard tag, a serving signature key and a file name)."
        )
    return name


class Task:
    """Base class of all task types. Use one of its subclasses.

    Args:
        name: output name, label key (unless `label` is given) and log prefix.
        label: key of this task's labels in the dataset's label dict.
        loss: any Keras loss (name, function or `keras.losses.Loss`); it is
            applied per example (per label, per token) and reduced by keras_mtl
            to a mean over the labelled examples only.
        metrics: Keras metrics for this task; `None` uses the task's defaults.
        weight: fixed loss weight, used by the `"fixed"` weighting method.
        tower: sizes of task-specific Dense layers between the shared
            representation and the output layer.
        given: the name of a Binary task this one is conditional on (a
            conversion can only follow a click): its loss and metrics count
            only the examples whose `given` label is positive, its sample
            space. A Binary conditional task also logs
            `<given>_and_<name>_auc`: p(given) x p(name | given) against
            "both positive" over every example, and serves that product as
            `<given>_and_<name>`.
        entire_space: (a Binary task with `given` only) train it as ESMM
            does (Ma et al. 2018): the loss compares p(given) x p(name |
            given) with "both positive" over every example with a `given`
            label, instead of p(name | given) over the positive ones; its
            metrics stay conditional. `keras_mtl.models.esmm` sets it.
        inconsistent: what a label of 1 for this task where its `given`
            label is 0 is, when labels are checked before training:
            `"warn"` (counted and reported; such examples are outside the
            sample space anyway) or `"raise"`.
        at_most: (Binary) the name of a Binary task whose probability this
            one's should not exceed (a purchase is no likelier than the click
            it needs): the loss adds `at_most_weight` x max(p(task) -
            p(at_most), 0) per labelled example (AITM's calibrator).
        at_most_weight: the weight of that penalty.
    """

    # How labels are compared with predictions: "elementwise" tasks score each
    # output unit as an independent target, "sparse" tasks take class ids.
    target_kind = "elementwise"
    default_loss: str = ""
    missing_class_id = -1
    # (low, high) of a valid label, for tasks whose loss assumes one (0/1 targets).
    label_range: tuple[float, float] | None = None
    # Labels are values >= 0 with no upper bound (amounts, relevance grades).
    nonnegative_labels = False

    def __init__(
        self,
        name: str,
        *,
        label: str | None = None,
        loss: typing.Any = None,
        metrics: typing.Sequence[typing.Any] | None = None,
        weight: float = 1.0,
        tower: typing.Sequence[int] = (),
        given: str | None = None,
        entire_space: bool = False,
        inconsistent: str = "warn",
        at_most: str | None = None,
        at_most_weight: float = 1.0,
    ):
        self.name = validate_name(name)
        self.label = validate_name(label if label is not None else name, "label")
        weight = float(weight)
        if not weight >= 0.0 or weight == float("inf"):
            raise ValueError(
                f"Task {name!r}: weight must be a finite number >= 0, got {weight}."
            )
        self.weight = weight
        self.loss = self._resolve_loss(loss)
        self._metrics = list(metrics) if metrics is not None else None
        self.tower = [int(u) for u in tower]
        self.given = validate_name(given, "given") if given is not None else None
        if self.given == self.name:
            raise ValueError(f"Task {name!r} cannot be given itself (given={given!r}).")
        if not isinstance(entire_space, bool):
            raise ValueError(f"Task {name!r}: entire_space must be True or False, got {entire_space!r}.")
        if entire_space and (self.given is None or type(self).__name__ != "Binary"):
            raise ValueError(
                f"Task {name!r}: entire_space=True trains p(given) x p({name} | given), so it needs a "
                f"Binary task with `given` set; this is a {type(self).__name__} with given={given!r}."
            )
        self.entire_space = entire_space
        if inconsistent not in ("warn", "raise"):
            raise ValueError(f"Task {name!r}: inconsistent must be 'warn' or 'raise', got {inconsistent!r}.")
        self.inconsistent = inconsistent
        self.at_most = validate_name(at_most, "at_most") if at_most is not None else None
        if self.at_most is not None and (self.at_most == self.name or type(self).__name__ != "Binary"):
            raise ValueError(
                f"Task {name!r}: at_most bounds a Binary task's probability by another Binary task's; "
                f"got at_most={at_most!r} on a {type(self).__name__} task."
            )
        at_most_weight = float(at_most_weight)
        if not at_most_weight >= 0 or at_most_weight == float("inf"):
            raise ValueError(f"Task {name!r}: at_most_weight must be a finite number >= 0, got {at_most_weight}.")
        self.at_most_weight = at_most_weight

    def _resolve_loss(self, loss):
        return keras.losses.get(loss if loss is not None else self.default_loss)

    # Label key of the group (query, user) each example belongs to, for tasks
    # whose loss compares the examples of a group (`Ranking`); None otherwise.
    group: str | None = None

    # ------------------------------------------------------------------ model
    # Subclasses define `units`: the size of the output layer's last axis.
    activation = "linear"
    uses_sequence = False

    def build_head(self, features: keras.KerasTensor) -> keras.KerasTensor:
        """Adds this task's tower and output layer on `features`; the output is named after the task."""
        return _heads.dense_head(
            features, self.name, self.units, self.activation, self.tower
        )

    def metrics(self) -> list:
        """Fresh metric objects for this task (defaults unless given at construction)."""
        if self._metrics is not None:
            return [keras.metrics.get(m) if isinstance(m, str) else m for m in self._metrics]
        return self.default_metrics()

    def default_metrics(self) -> list:
        return []

    # ------------------------------------------------------------ labels, loss
    def prepare(self, y, y_pred, sample_weight=None, *, check: bool = True):
        """Turns raw labels into `(labels, weights)` with the missing ones zero-weighted.

        `labels` has the shape the loss and metrics compare with `y_pred`;
        `weights` has one entry per scored unit (example, label or token).
        With `check` (default) invalid labels (class ids out of range, labels
        outside `label_range`) fail with the task's name; `check=False` leaves
        those asserts out, for labels already checked (`keras_mtl.data.checks`).
        """
        y, present = self.mask_labels(self._reshape_labels(tf.convert_to_tensor(y), y_pred), y_pred.dtype)
        checks = self.label_checks(y) if check else []
        if checks:
            # The loss reads `y` only after the checks, so they fail first, with the task's name.
            with tf.control_dependencies(checks):
                y = tf.identity(y)
        weights = tf.cast(present, y_pred.dtype)
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, y_pred.dtype)
            # A per-example weight of shape (batch,) scales every unit of that example.
            while sample_weight.shape.rank < weights.shape.rank:
                sample_weight = tf.expand_dims(sample_weight, -1)
            weights = weights * sample_weight
        return y, weights

    def mask_labels(self, y, dtype=tf.float32):
        """`(labels with the missing ones set to 0, a boolean mask of the present ones)`.

        Integer labels of a task without a class-id marker are cast to
        `dtype`: their marker is NaN, which only floats can hold.

        Example:
        >>> y, present = Binary("click").mask_labels(tf.constant([1.0, -1.0, float("nan")]))
        >>> y.numpy().tolist(), present.numpy().tolist()
        ([1.0, 0.0, 0.0], [True, False, False])
        """
        if self.missing_class_id is None and not y.dtype.is_floating:
            y = tf.cast(y, dtype)
        if y.dtype.is_floating:
            present = tf.equal(y, y)  # False only for NaN: one op where is_nan needs a logical_not too
            if self.missing_class_id is not None:
                present &= tf.not_equal(y, tf.cast(self.missing_class_id, y.dtype))
        else:
            present = tf.not_equal(y, tf.cast(self.missing_class_id, y.dtype))
        # A scalar 0 broadcasts inside the select: no zeros tensor to build each step.
        return tf.where(present, y, tf.constant(0, y.dtype)), present

    def label_checks(self, y) -> list:
        """Asserts that the labels in `y` are valid for this task, failing with the task's name and values.

        `y` holds real labels, with missing ones already set to 0 (as
        `prepare` does): float labels must be finite, class ids in
        `0..units-1`, and labels of a task with a `label_range` inside it.
        One assert per task (a check costs its ops wherever it runs), whose
        message shows the batch's smallest and largest label. XLA drops
        asserts: a compiled step relies on checks of the data before it (see
        `keras_mtl.data.batch_checks`). Returns the assert ops (none in
        eager mode, where a failing assert raises at once).

        Example:
        >>> try:
        ...     Binary("click").label_checks(tf.constant([0.0, 2.0]))
        ... except tf.errors.InvalidArgumentError as e:
        ...     print(e.message.split("assertion failed: ")[1].split(" [Op")[0])
        [Task click: labels must be in [0, 1] (-1 or NaN = missing); smallest and largest label in the batch:] [0] [2]
        """
        # The batch's smallest and largest label decide every check (missing
        # labels are 0, NaN are gone) and are what the message shows.
        low, high = tf.reduce_min(y), tf.reduce_max(y)
        rule = self.label_rule(low, high)
        if rule is None:
            return []
        valid, message = rule
        # The task's name unquoted: the op prints its message's quotes escaped.
        # Out-of-range ids would otherwise fail deep inside the loss op (or
        # give NaN), far from the task they belong to. The raw op:
        # `tf.debugging.Assert` wraps it in a conditional, which costs a step
        # more than the check itself.
        check = tf.raw_ops.Assert(
            condition=valid, data=[message + "; smallest and largest label in the batch:", low, high]
        )
        return [] if tf.executing_eagerly() else [check]

    def label_rule(self, low, high):
        """`(valid, message)` for labels whose smallest and largest real value are `low` and `high`, or None.

        `valid` is a boolean tensor; the message names the task (unquoted:
        TensorFlow's Assert prints quotes escaped) and the rule. None for
        tasks whose labels need no check (integer labels of a task without
        class ids).

        Example:
        >>> valid, message = Multiclass("topic", 3).label_rule(tf.constant(0), tf.constant(5))
        >>> bool(valid), message
        (False, 'Task topic: class id out of range; valid ids are 0..2 (-1 = missing)')
        """
        if self.target_kind == "sparse":
            valid = (low >= 0) & (high < tf.cast(self.units, high.dtype))
            return valid, f"Task {self.name}: class id out of range; valid ids are 0..{self.units - 1} (-1 = missing)"
        if self.label_range is not None:
            lo, hi = self.label_range
            valid = (low >= tf.cast(lo, low.dtype)) & (high <= tf.cast(hi, high.dtype))
            return valid, f"Task {self.name}: labels must be in [{lo}, {hi}] (-1 or NaN = missing)"
        if low.dtype.is_floating:
            return tf.math.is_finite(low) & tf.math.is_finite(high), f"Task {self.name}: labels must be finite (NaN = missing)"
        return None

    def _reshape_labels(self, y, y_pred):
        per_example = y_pred.shape[1:] if self.target_kind == "elementwise" else y_pred.shape[1:-1]
        given = y.shape[1:] if y.shape.rank else y.shape
        # Checked while tracing, where shapes are known: a mismatch would
        # otherwise surface as a bare Reshape error from inside the graph.
        if (
            y.shape.rank is not None and per_example.is_fully_defined()
            and given.is_fully_defined() and given.num_elements() != per_example.num_elements()
        ):
            raise ValueError(
                f"Task {self.name!r}: labels of shape {tuple(y.shape)} do not fit its output of "
                f"shape {tuple(y_pred.shape)}: each example needs {self.label_shape_hint()}, got "
                f"{given.num_elements()} value(s) per example."
            )
        if self.target_kind == "elementwise":
            return tf.reshape(y, tf.shape(y_pred))
        return tf.reshape(y, tf.shape(y_pred)[:-1])

    def label_shape_hint(self) -> str:
        """What one example's label looks like, for error messages.

        Example:
        >>> Multiclass("topic", 4).label_shape_hint()
        'one class id (0..3), not a one-hot row'
        """
        return f"{self.units} value(s)"

    def unit_losses(self, y, y_pred):
        """Loss per scored unit, shaped like the weights from `prepare`."""
        # Loss objects are called unreduced; plain functions already are.
        loss = self.loss.call if isinstance(self.loss, keras.losses.Loss) else self.loss
        if self.target_kind == "elementwise":
            # A trailing axis of 1 makes every Keras loss (which averages the
            # last axis) return one value per output unit, so each can be masked.
            y = tf.cast(y, y_pred.dtype)
            # The output keeps the logits Keras' sigmoid attaches, so the cross-entropy reads them as plain Keras' does.
            return loss(tf.expand_dims(y, -1), _compat.expand_keeping_logits(y_pred))
        return loss(y, y_pred)

    # ---------------------------------------------------------- serialization
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "loss": keras.saving.serialize_keras_object(self.loss),
            "metrics": (
                [keras.saving.serialize_keras_object(m) for m in self._metrics]
                if self._metrics is not None
                else None
            ),
            "weight": self.weight,
            "tower": list(self.tower),
            "given": self.given,
            "entire_space": self.entire_space,
            "inconsistent": self.inconsistent,
            "at_most": self.at_most,
            "at_most_weight": self.at_most_weight,
        }

    @classmethod
    def from_config(cls, config: dict) -> "Task":
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        if config.get("metrics") is not None:
            config["metrics"] = [
                keras.saving.deserialize_keras_object(m) for m in config["metrics"]
            ]
        return cls(**config)

    def __repr__(self) -> str:
        given = f", given={self.given!r}" if self.given else ""
        return f"{type(self).__name__}({self.name!r}, weight={self.weight}{given})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and _comparable(self.get_config()) == _comparable(
            other.get_config()
        )

    __hash__ = None


def _comparable(config: dict) -> dict:
    return {k: repr(v) for k, v in config.items()}


@keras.saving.register_keras_serializable(package="keras_mtl")
class Binary(Task):
    """A yes/no target: one sigmoid output, binary cross-entropy, AUC and accuracy.

    Example:
    >>> task = Binary("income")
    >>> task.units, [m.name for m in task.metrics()]
    (1, ['auc', 'accuracy'])
    """

    default_loss = "binary_crossentropy"
    activation = "sigmoid"
    units = 1
    label_range = (0, 1)

    def default_metrics(self):
        return [keras.metrics.AUC(name="auc", num_thresholds=_AUC_THRESHOLDS), keras.metrics.BinaryAccuracy(name="accuracy")]

    def label_shape_hint(self):
        return "one 0/1 value"


@keras.saving.register_keras_serializable(package="keras_mtl")
class Multiclass(Task):
    """One class out of `num_classes`: softmax output, sparse cross-entropy, accuracy.

    Labels are integer class ids; -1 marks a missing label.

    Example:
    >>> Multiclass("topic", num_classes=4).units
    4
    """

    target_kind = "sparse"
    default_loss = "sparse_categorical_crossentropy"
    activation = "softmax"

    def __init__(self, name: str, num_classes: int, **kwargs):
        if int(num_classes) < 2:
            raise ValueError(f"Task {name!r}: num_classes must be >= 2, got {num_classes}.")
        self.num_classes = int(num_classes)
        super().__init__(name, **kwargs)

    @property
    def units(self):
        return self.num_classes

    def label_shape_hint(self):
        return f"one class id (0..{self.num_classes - 1}), not a one-hot row"

    def default_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="keras_mtl")
class Multilabel(Task):
    """Several independent yes/no labels: `num_labels` sigmoid outputs.

    Labels are multi-hot of shape (batch, num_labels); -1 or NaN marks one
    missing label, so partially labelled rows still train the labels they have.

    Example:
    >>> Multilabel("tags", num_labels=5).units
    5
    """

    default_loss = "binary_crossentropy"
    activation = "sigmoid"
    label_range = (0, 1)

    def __init__(self, name: str, num_labels: int, **kwargs):
        if int(num_labels) < 1:
            raise ValueError(f"Task {name!r}: num_labels must be >= 1, got {num_labels}.")
        self.num_labels = int(num_labels)
        super().__init__(name, **kwargs)

    @property
    def units(self):
        return self.num_labels

    def label_shape_hint(self):
        return f"{self.num_labels} 0/1 values (a multi-hot row)"

    def default_metrics(self):
        return [
            keras.metrics.AUC(name="auc", num_thresholds=_AUC_THRESHOLDS, multi_label=True, num_labels=self.num_labels),
            keras.metrics.BinaryAccuracy(name="accuracy"),
        ]

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels}


@keras.saving.register_keras_serializable(package="keras_mtl")
class Regression(Task):
    """A real-valued target: linear output, mean squared error, MAE and RMSE.

    NaN marks a missing value (-1 is a legitimate value here). Labels may be
    floats or integers.

    With `normalize` (the default) the task trains on standardised targets:
    the loss compares `(label - mean) / std` with the prediction scaled the
    same way, so a target in the thousands weighs in like one of unit scale
    next to the other tasks' losses. The output layer (a
    `keras_mtl.layers.ScaledDense` named after the task) adds the scale back,
    so predictions, the saved model and its export are in the label's units,
    and so are the `mae`/`rmse` metrics; `<task>_loss` is the loss on the
    z-scores. `mean` and `std` (per output unit, missing values ignored) come
    from the training labels: `MultiTaskModel.adapt_targets(labels)` sets
    them, and the first `fit` of a model whose stats are unset reads them
    from its training data. A custom `loss` sees z-scores too; one that
    needs the raw values (a count's `poisson`, `msle`, `mape`, or one that
    reads label values) takes `normalize=False`, which trains on them.

    Example:
    >>> Regression("log_retweets").units
    1
    >>> Regression("hours").target_stats(np.array([10, 30, np.nan]))
    (array([20.]), array([10.]))
    """

    default_loss = "mean_squared_error"
    missing_class_id = None

    def __init__(self, name: str, units: int = 1, *, normalize: bool = True, **kwargs):
        if int(units) < 1:
            raise ValueError(f"Task {name!r}: units must be >= 1, got {units}.")
        self._units = int(units)
        self.normalize = bool(normalize)
        super().__init__(name, **kwargs)
        loss_name = getattr(getattr(self.loss, "fn", self.loss), "__name__", "")
        if self.normalize and loss_name in _RAW_VALUE_LOSSES:
            # z-scores are negative for half the labels: these losses would give NaN or nonsense.
            raise ValueError(
                f"Task {name!r}: loss {loss_name!r} needs the labels' own values (positive counts, "
                "ratios), but normalize=True hands it z-scores; pass normalize=False."
            )

    @property
    def units(self):
        return self._units

    def build_head(self, features: keras.KerasTensor) -> keras.KerasTensor:
        return _heads.dense_head(
            features, self.name, self.units, self.activation, self.tower, destandardize=self.normalize
        )

    def target_stats(self, labels) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of `labels` per output unit, NaN (missing) left out.

        A unit with no labels gets mean 0 and std 1, one whose labels are
        all equal std 1, so standardising never divides by zero.
        """
        moments = TargetMoments(self)
        moments.update(labels)
        return moments.result()

    def default_metrics(self):
        return [
            keras.metrics.MeanAbsoluteError(name="mae"),
            keras.metrics.RootMeanSquaredError(name="rmse"),
        ]

    def get_config(self):
        return {**super().get_config(), "units": self._units, "normalize": self.normalize}

    @classmethod
    def from_config(cls, config: dict) -> "Regression":
        # Models saved before `normalize` existed trained on raw targets, with a plain Dense output.
        return super().from_config({"normalize": False, **config})


# Keras losses that read label values as they are (logs, ratios), which standardising breaks.
_RAW_VALUE_LOSSES = {"poisson", "mean_squared_logarithmic_error", "mean_absolute_percentage_error", "kl_divergence"}


class TargetMoments:
    """Running count, mean and squared deviations of a regression task's labels, batch by batch.

    Batches are merged with Chan et al.'s pairwise update, in float64, so a
    large mean does not swamp a small spread.

    Example:
    >>> m = TargetMoments(Regression("y"))
    >>> m.update([1.0, 2.0]); m.update([3.0, float("nan")])
    >>> m.count.tolist(), m.result()[0].tolist()
    ([3.0], [2.0])
    """

    def __init__(self, task: "Regression"):
        self.task = task
        self.count = np.zeros(task.units)
        self.mean = np.zeros(task.units)
        self.m2 = np.zeros(task.units)

    def update(self, labels) -> None:
        values = np.asarray(labels)
        owner = f"Task {self.task.name!r} (label {self.task.label!r})"
        if values.dtype.kind not in "biuf":
            raise ValueError(f"{owner}: labels must be numbers, got dtype {values.dtype}.")
        values = values.astype(np.float64)
        if values.size % self.task.units:
            raise ValueError(f"{owner}: labels of shape {values.shape} do not fit its {self.task.units} output unit(s).")
        values = values.reshape(-1, self.task.units)
        present = ~np.isnan(values)
        count = present.sum(axis=0).astype(np.float64)
        if not np.isfinite(values[present]).all():
            raise ValueError(f"{owner}: labels hold inf; mark a missing value with NaN.")
        total = np.where(present, values, 0.0).sum(axis=0)
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        m2 = (np.where(present, values - mean, 0.0) ** 2).sum(axis=0)
        merged = self.count + count
        delta = mean - self.mean
        share = np.divide(count, merged, out=np.zeros_like(count), where=merged > 0)
        self.m2 = self.m2 + m2 + delta**2 * self.count * share
        self.mean = self.mean + delta * share
        self.count = merged

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """`(mean, std)` per output unit (0 and 1 where there are no labels, std 1 where they are all equal)."""
        labelled = self.count > 0
        mean = np.where(labelled, self.mean, 0.0)
        var = np.divide(self.m2, self.count, out=np.zeros_like(self.m2), where=labelled)
        std = np.sqrt(var)
        # Relative to the mean: float rounding leaves a tiny spread on equal values.
        flat = std <= 1e-12 * np.maximum(np.abs(mean), 1.0)
        return mean, np.where(flat, 1.0, std)


@keras.saving.register_keras_serializable(package="keras_mtl")
class Tagging(Task):
    """One tag per token (named entities, parts of speech): a softmax per position.

    Needs a trunk with a per-token output (e.g. `keras_mtl.trunks.text`).
    Labels are tag ids of shape (batch, sequence_length); -1 marks padding or
    an unlabelled token, which is neither scored nor counted.

    Example:
    >>> Tagging("ner", num_tags=9).uses_sequence
    True
    """

    target_kind = "sparse"
    default_loss = "sparse_categorical_crossentropy"
    activation = "softmax"
    uses_sequence = True

    def __init__(self, name: str, num_tags: int, **kwargs):
        if int(num_tags) < 2:
            raise ValueError(f"Task {name!r}: num_tags must be >= 2, got {num_tags}.")
        self.num_tags = int(num_tags)
        super().__init__(name, **kwargs)

    @property
    def units(self):
        return self.num_tags

    def label_shape_hint(self):
        return "one tag id per token (a row as long as the sequence)"

    def default_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def get_config(self):
        return {**super().get_config(), "num_tags": self.num_tags}


_TASK_TYPES = Registry("task type")


def register(name: str, cls: type[Task] | None = None):
    """Makes a `Task` subclass available as `name`, to `get` and to a run config's `tasks[].type`.

    Use it as a decorator or call it with the class. A run config builds it
    as `cls(name, label=..., weight=..., tower=..., **others)` with those of
    `num_classes`, `num_labels`, `num_tags`, `units` that the entry sets.

    Example:
    >>> register("binary", Binary) is Binary
    True
    """
    if cls is not None and not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register({name!r}, ...) takes a keras_mtl.tasks.Task subclass, got {cls!r}.")
    return _TASK_TYPES.register(name, cls)


def get(identifier: str, name: str, **kwargs) -> Task:
    """The task of type `identifier` (e.g. "binary") named `name`, built with `kwargs`.

    Example:
    >>> get("multiclass", "topic", num_classes=20).num_classes
    20
    """
    return _TASK_TYPES.get(identifier)(name, **kwargs)


def available() -> list[str]:
    """Names of the task types, for `get` and a run config's `tasks[].type`.

    Example:
    >>> available()
    ['binary', 'multiclass', 'multilabel', 'ranking', 'regression', 'tagging', 'zero_inflated_lognormal']
    """
    return _TASK_TYPES.available()


@keras.saving.register_keras_serializable(package="keras_mtl")
class ZeroInflatedLognormal(Task):
    """A value that is 0 for most examples and heavy-tailed otherwise (lifetime value, spend):
    zero-inflated lognormal (ZILN; Wang, Liu and Miao 2019).

    The output has three units: the logit of "value > 0", and the mean and
    (softplus) scale of the log of a positive value. The loss is the
    cross-entropy of "value > 0" plus the lognormal's negative
    log-likelihood of each positive value. Metrics: `mae` of the expected
    value and `positive_auc` (the AUC of P(value > 0)). The export serves the
    expected value, p * exp(mu + sigma^2 / 2), as `<task>_value` next to the
    three parameters. Labels are values >= 0; NaN marks a missing one.

    Example:
    >>> task = ZeroInflatedLognormal("ltv")
    >>> task.units, [m.name for m in task.metrics()]
    (3, ['mae', 'positive_auc'])
    """

    target_kind = "sparse"  # one label per example for the three output units
    missing_class_id = None
    units = 3
    nonnegative_labels = True

    def __init__(self, name: str, **kwargs):
        from keras_mtl import _ziln

        kwargs.setdefault("loss", _ziln.ziln_loss)
        super().__init__(name, **kwargs)

    def label_rule(self, low, high):
        valid = (low >= tf.cast(0, low.dtype)) & tf.math.is_finite(high) if low.dtype.is_floating else low >= 0
        return valid, f"Task {self.name}: values must be finite and >= 0 (NaN = missing)"

    def label_shape_hint(self):
        return "one value >= 0"

    def default_metrics(self):
        from keras_mtl import _ziln

        return [keras.metrics.MeanMetricWrapper(_ziln.ziln_mae, name="mae"), _ziln.ZILNPositiveAUC(name="positive_auc", num_thresholds=_AUC_THRESHOLDS)]

    @staticmethod
    def expected_value(y_pred):
        """The expected value of each example's prediction (what the export serves as `<task>_value`)."""
        from keras_mtl import _ziln

        return _ziln.expected_value(y_pred)


@keras.saving.register_keras_serializable(package="keras_mtl")
class Ranking(Task):
    """A score that orders the examples of each group (the items shown for one query, one
    user) by relevance: one linear output, a loss over pairs or lists within a group.

    Labels are relevance grades >= 0 (a click is 1, a purchase 2, ...; -1 or
    NaN = missing); `group` names the label key holding each example's
    group id (integers, or strings, which are hashed). Only examples of the
    same group are compared, within a batch (under a strategy, within the
    global batch: replicas gather each other's scores), so batches should
    hold whole groups or large parts of them.

    Args:
        name: the task (and output) name.
        group: the label key of the group ids.
        loss: `"pairwise"`: RankNet's logistic loss, the mean over pairs
            (i, j) of one group with y_i > y_j of log(1 + exp(-(s_i - s_j)));
            or `"listwise"`: ListNet's top-one cross-entropy, the mean over
            groups of -sum_i (y_i / sum_j y_j) log softmax(s)_i.
        ndcg_at: the cut-off k of the logged `<task>_ndcg` (None: the whole
            group); NDCG is computed over the examples of each group within
            a batch, and averaged over groups with a positive label.
        **kwargs: `label`, `weight`, `tower`, `metrics` as for every task.

    Example:
    >>> task = Ranking("relevance", group="query")
    >>> task.units, task.group, task.loss
    (1, 'query', 'pairwise')
    """

    units = 1
    activation = "linear"
    nonnegative_labels = True

    def __init__(self, name: str, *, group: str, loss: str = "pairwise", ndcg_at: int | None = None, **kwargs):
        for key in ("given", "entire_space", "at_most"):
            if kwargs.get(key):
                raise ValueError(f"Task {name!r}: a Ranking task cannot take {key}= (it is for Binary tasks).")
        super().__init__(name, loss=loss, **kwargs)
        self.group = validate_name(group, "group")
        if self.group in (self.name, self.label):
            raise ValueError(f"Task {name!r}: group must be another label key than the task's own; got {group!r}.")
        if ndcg_at is not None and (isinstance(ndcg_at, bool) or not isinstance(ndcg_at, int) or ndcg_at < 1):
            raise ValueError(f"Task {name!r}: ndcg_at must be a positive int or None, got {ndcg_at!r}.")
        self.ndcg_at = ndcg_at

    def _resolve_loss(self, loss):
        from keras_mtl import _ranking

        if loss not in _ranking.LOSSES:
            raise ValueError(f"Task {self.name!r}: a Ranking loss must be one of {list(_ranking.LOSSES)}, got {loss!r}.")
        return loss

    def group_loss(self, y, y_pred, weights, groups):
        """`(this replica's share of the loss, the number of pairs or lists behind it)`."""
        from keras_mtl import _ranking

        loss = _ranking.pairwise_logistic if self.loss == "pairwise" else _ranking.listwise_softmax
        return loss(y_pred, y, weights, groups)

    def unit_losses(self, y, y_pred):
        raise TypeError(
            f"Task {self.name!r} (Ranking) has no loss per example: its loss compares the examples of a "
            "group (group_loss)."
        )

    def label_rule(self, low, high):
        valid = (low >= tf.cast(0, low.dtype)) & (tf.math.is_finite(high) if high.dtype.is_floating else True)
        return valid, f"Task {self.name}: relevance labels must be finite and >= 0 (-1 or NaN = missing)"

    def label_shape_hint(self):
        return "one relevance grade >= 0"

    def get_config(self):
        return {**super().get_config(), "group": self.group, "ndcg_at": self.ndcg_at}


for _type_name, _cls in (
    ("binary", Binary), ("multiclass", Multiclass), ("multilabel", Multilabel),
    ("regression", Regression), ("tagging", Tagging), ("zero_inflated_lognormal", ZeroInflatedLognormal),
    ("ranking", Ranking),
):
    register(_type_name, _cls)


def check_unique(tasks: typing.Sequence[Task]) -> list[Task]:
    """Returns `tasks` as a list after checking there is at least one and names are unique.

    Example:
    >>> [t.name for t in check_unique([Binary("a"), Binary("b")])]
    ['a', 'b']
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("At least one task is needed; got an empty list.")
    for t in tasks:
        if not isinstance(t, Task):
            raise TypeError(f"Expected keras_mtl.tasks.Task objects, got {t!r}.")
    seen = set()
    for t in tasks:
        if t.name in seen:
            raise ValueError(f"Duplicate task name {t.name!r}: task names must be unique.")
        seen.add(t.name)
    for name in seen:
        if f"val_{name}" in seen:
            # Keras logs validation metrics as `val_<name>`: `val_a_loss` would be both.
            raise ValueError(
                f"Task names {name!r} and 'val_{name}' clash in the logs (Keras names task {name!r}'s "
                f"validation loss 'val_{name}_loss'); rename one of them."
            )
    return tasks
