"""MultiTaskModel: a Functional Keras model that knows its tasks and how to weigh them."""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import _compat, _conditions as conditions, _encoding as encoding, _heads as heads, _masking as masking
from keras_mtl import _multipliers as multipliers_lib, _ranking as ranking
from keras_mtl import weighting as weighting_lib
from keras_mtl._trackers import TaskMeans
from keras_mtl.tasks import TargetMoments, Task, check_unique

# In-memory per-task sample weights travel to the step inside the label dict
# under these keys (see `_weights_into_labels`): "." cannot occur in a label
# key, so they never clash with one.
_WEIGHT_KEY = "sample_weight."
# Teachers' outputs for distillation travel in the label dict the same way
# (see `keras_mtl.distillation.Distillation.precompute`).
TEACHER_KEY = "teacher."

# Batches `fit` and `adapt_targets` read to set regression target stats from
# a dataset of infinite or unknown size.
ADAPT_BATCHES = 100


@keras.saving.register_keras_serializable(package="keras_mtl")
# What MultiTaskModel overrides of keras.Model, and why (tests/test_model.py
# pins this list: a new override must be added here with its reason).
# - compute_loss, compute_metrics: the documented hooks (as TF Recommenders'
#   Model uses them): per-task masked losses combined by the weighting method;
#   metrics on the labels prepared once per step (missing labels masked), plus
#   the joint AUC of conditional tasks and ranking groups' NDCG.
# - train_step: gradient weighting methods (PCGrad, MGDA, ...) need one
#   gradient per task, which compute_loss cannot give; the non-finite record
#   is written in the step's own graph. test_step: drops the training-only
#   logs (task weights) that Keras' step would repeat in evaluation.
# - compile, get_compile_config, compile_from_config, get_config: losses,
#   metrics and weights come from the tasks, and a saved model comes back
#   compiled with its tasks and weighting method.
# - fit, evaluate, predict: what must happen once per call, before Keras
#   builds its step: labels checked on the data (naming task and value) so
#   the step need not, the XLA choice for the data given, the steps per
#   execution for the callbacks given, Regression statistics adapted, sample
#   weights keyed by task name, the strategy made ready for string features,
#   and clear errors for data with no batches; evaluate also returns the
#   metrics summed over replicas (Keras would average each replica's own).
# - __call__: calling the model on its encoded features (`data.encoded`)
#   runs only the layers after the lookups.
class MultiTaskModel(keras.Model):
    """A Functional model with one named output per task.

    Build one with a factory from `keras_mtl.models` rather than by hand.
    `compile()` takes the losses, metrics and weights from the tasks;
    `fit`, `evaluate`, `predict` and `save` are Keras' own. Labels are a dict
    keyed by each task's `label` key; missing labels carry the task's missing
    marker (see `keras_mtl.tasks`) and are left out of that task's loss and
    metrics. Logs name every task: `income_loss`, `income_auc`, ...
    Per-task sample weights are a dict keyed by task name (`fit(...,
    sample_weight={"income": w})`, or the third element of a dataset's
    batches), whatever the tasks' label keys.

    Args:
        inputs: Keras inputs (a tensor or a dict of them).
        outputs: dict `{task_name: output tensor}`, one per task.
        name: model name.
        tasks: the `keras_mtl.tasks.Task` objects, one per output.
        shared_layers: names of the layers shared by all tasks (the trunk);
            weighting methods take task gradients with respect to them.
        representation: name of the layer whose output is the shared
            representation the task heads read.
        unknown_labels: `"raise"` (default) stops on a label key that no
            task reads, which catches typos; `"ignore"` skips such labels,
            e.g. for a single-task baseline fed a multi-task dataset.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")])
    >>> model.compile(optimizer="adam")
    >>> sorted(model.output_names)
    ['a', 'b']
    """

    def __init__(
        self,
        inputs,
        outputs,
        name=None,
        *,
        tasks: Sequence[Task | dict] = (),
        shared_layers: Sequence[str] = (),
        representation: str | None = None,
        unknown_labels: str = "raise",
        **kwargs,
    ):
        if unknown_labels not in ("raise", "ignore"):
            raise ValueError(f"unknown_labels must be 'raise' or 'ignore', got {unknown_labels!r}.")
        # Keras' Functional drops keyword arguments it does not know without a
        # word; a factory's misspelt argument (`num_expert=4`) lands here.
        unexpected = sorted(set(kwargs) - {"trainable"})
        if unexpected:
            raise TypeError(
                f"Model {name!r} got unexpected keyword argument(s) {unexpected}: a model factory takes its "
                "own arguments (see its docstring) and passes on only MultiTaskModel's (tasks, "
                "shared_layers, representation, unknown_labels)."
            )
        tasks = check_unique(
            [t if isinstance(t, Task) else keras.saving.deserialize_keras_object(t) for t in tasks]
        )
        conditions.check_conditions(tasks, subset=unknown_labels == "ignore")
        if not isinstance(outputs, Mapping):
            raise TypeError(
                "MultiTaskModel outputs must be a dict {task_name: tensor}; got "
                f"{type(outputs).__name__}."
            )
        names = [t.name for t in tasks]
        if sorted(outputs) != sorted(names):
            raise ValueError(
                f"Outputs {sorted(outputs)} do not match the tasks {sorted(names)}: "
                "there must be exactly one output per task, keyed by task name."
            )
        super().__init__(inputs=inputs, outputs=dict(outputs), name=name, **kwargs)
        scaled = {}
        for t in tasks:
            layer, _ = encoding.producer(outputs[t.name])
            if isinstance(layer, heads.ScaledDense):
                scaled[t.name] = layer
            elif getattr(t, "normalize", False):
                raise ValueError(
                    f"Task {t.name!r} normalizes its targets, so its output must come from "
                    f"task.build_head(...) (a keras_mtl.layers.ScaledDense), not {type(layer).__name__} "
                    f"{layer.name!r}; build the head with the task, or pass normalize=False."
                )
        # Not tracked: these are the model's own (already tracked) output layers.
        _compat.set_untracked(self, "_target_scales", scaled)
        self._tasks = tuple(tasks)
        self.shared_layers = list(shared_layers)
        self.representation = representation
        self.unknown_labels = unknown_labels
        self.weighting = None
        # Not tracked: the teachers it holds are other models, not part of this one.
        _compat.set_untracked(self, "distillation", None)
        self._task_loss_tracker = TaskMeans(names, "_loss")
        self._task_weight_tracker = TaskMeans(names, "_weight")
        joint = conditions.joint_tasks(tasks)
        self._joint_auc = conditions.JointAUC(joint) if joint else None
        ranked = [t for t in tasks if t.group is not None]
        self._group_ndcg = ranking.GroupNDCG(ranked) if ranked else None

    # ------------------------------------------------------------ structure
    @property
    def tasks(self) -> tuple[Task, ...]:
        """The model's tasks, in the order they were given (`output_names` has Keras' order: by name)."""
        return self._tasks

    def get_task(self, name: str) -> Task:
        """The task called `name`."""
        for t in self._tasks:
            if t.name == name:
                return t
        raise KeyError(f"No task {name!r}; tasks are {[t.name for t in self._tasks]}.")

    @property
    def preprocessing(self) -> encoding.Split | None:
        """The model's input preprocessing as a separate `encoder`, or None.

        Set when raw string inputs are encoded by weightless layers (lookups,
        normalisation, tokenisation) before the first layer that learns. The
        model then also accepts the encoded dict in place of raw inputs, so
        training can read features encoded once (`MultiTaskData.encoded`)
        while the saved and exported model still takes raw values.
        """
        if "_split" not in self.__dict__:
            # Not tracked: the halves share this model's layers.
            _compat.set_untracked(self, "_split", encoding.split(self))
        return self.__dict__["_split"]

    def __call__(self, inputs, *args, **kwargs):
        split = self.preprocessing
        if split is not None and split.accepts(inputs):
            return split.core(split.as_list(inputs), *args, **kwargs)
        return super().__call__(inputs, *args, **kwargs)

    @property
    def shared_variables(self) -> list:
        """Trainable variables of the layers shared by every task."""
        return [v for n in self.shared_layers for v in self.get_layer(n).trainable_variables]

    # -------------------------------------------------------------- compile
    def compile(
        self,
        optimizer: Any = "rmsprop",
        *,
        weighting: str | weighting_lib.Weighting = "fixed",
        loss_weights: Mapping[str, float] | Sequence[float] | None = None,
        metrics: Mapping[str, Sequence[Any]] | None = None,
        distillation=None,
        learning_rate_multipliers: Mapping[str, float] | None = None,
        **kwargs,
    ) -> None:
        """Configures training: losses and metrics come from the tasks.

        Args:
            optimizer: any Keras optimizer or its name.
            weighting: a name from `keras_mtl.weighting.available()` or a
                `keras_mtl.weighting.Weighting` object.
            loss_weights: `{task: weight}` overriding `Task.weight`
                (shorthand for `weighting=keras_mtl.weighting.Fixed(loss_weights)`),
                or, as in Keras, a list or tuple with one weight per output
                in the order of `model.output_names`.
            metrics: `{task: [metrics]}` replacing those tasks' default metrics.
            distillation: a `keras_mtl.distillation.Distillation`: training
                steps mix each distilled task's label loss with a loss against
                its teacher's outputs. Not saved with the model.
            learning_rate_multipliers: `{name: factor}`: discriminative
                learning rates, e.g. `{"trunk": 0.1, "sentiment": 2.0}` trains
                a pretrained encoder at a tenth of the optimizer's learning
                rate and task `sentiment`'s head at twice it; every other
                variable at the rate itself (a schedule's value at each
                step, when it is one). A key is a task name, meaning that
                task's own layers (those only its output depends on, after
                the shared representation: its tower and output layer), or
                else the name of a top-level layer (`model.get_layer(name)`),
                meaning all its trainable variables, its sublayers' included.
                Factors are numbers > 0 (to stop a layer training, set its
                `trainable = False`). Exact for every Keras optimizer: each
                covered variable's `update_step` gets the scaled rate, and
                decoupled weight decay (`AdamW`) decays it at the scaled rate
                too. Resolved to variables here, at compile: compile again
                after making more of the model trainable. Saved with the
                model (and kept by `keras_mtl.saving.copy_model`).
            **kwargs: passed to `keras.Model.compile` (`steps_per_execution`,
                `run_eagerly`, ...). `loss` is not accepted: give each task
                its loss instead. `jit_compile="auto"` (the default) chooses
                XLA at each `fit`/`evaluate`/`predict` from the data: on when
                the step reads features encoded once (`MultiTaskData.encoded`)
                on one device, unless the model draws random numbers
                (`Dropout`) on a machine without a GPU, where XLA draws them
                slowly; off otherwise (string lookups cannot be XLA-compiled,
                and on small models the compile outlasts the gain). `True`
                compiles whenever every feature is numeric; `False` never.
                `steps_per_execution="auto"` (the default) runs 32 steps per
                call of the compiled step on one device (Keras'
                `tf.while_loop` over the batches: the Python loop around each
                call costs a small model more than its step), unless a
                callback of the call acts on batches (see
                `keras_mtl._execution`), and never more steps than divide a
                given `steps_per_epoch`, `validation_steps` or `steps`;
                `predict`, and any call under a `tf.distribute` strategy,
                runs one. An integer is used as given.
        """
        for key in ("loss", "weighted_metrics"):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"MultiTaskModel.compile does not take `{key}`: set it per task "
                    f"(e.g. keras_mtl.tasks.Binary('income', {key.split('_')[-1]}=...))."
                )
            kwargs.pop(key, None)
        if isinstance(loss_weights, (list, tuple)):
            loss_weights = self._loss_weights_by_task(loss_weights)
        if loss_weights:
            if weighting not in ("fixed", None):
                raise ValueError(
                    "`loss_weights` sets fixed weights; it cannot be combined with "
                    f"weighting={weighting!r}."
                )
            weighting = weighting_lib.Fixed(loss_weights)
        jit_request = kwargs.pop("jit_compile", "auto")
        if jit_request not in ("auto", True, False):
            raise ValueError(f"jit_compile must be 'auto', True or False; got {jit_request!r}.")
        steps_request = kwargs.pop("steps_per_execution", "auto")
        if steps_request != "auto" and (
            isinstance(steps_request, bool) or not isinstance(steps_request, (int, np.integer)) or steps_request < 1
        ):
            raise ValueError(f"steps_per_execution must be 'auto' or an integer >= 1; got {steps_request!r}.")
        learning_rate_multipliers = multipliers_lib.check(learning_rate_multipliers)
        scaled = multipliers_lib.resolve(self, learning_rate_multipliers)
        if optimizer is None and scaled:
            raise ValueError("learning_rate_multipliers scale the optimizer's learning rate: pass an optimizer.")
        if optimizer is not None:
            # The optimizer object Keras' compile would make from the name; set (or,
            # without multipliers, cleared) before compiling, so a refusal changes nothing.
            optimizer = keras.optimizers.get(optimizer)
            _compat.set_learning_rate_multipliers(optimizer, scaled)
        method = weighting_lib.get(weighting)
        method.attach(self)
        if distillation is not None:
            from keras_mtl.distillation import Distillation

            if not isinstance(distillation, Distillation):
                raise TypeError(
                    "compile(distillation=...) takes a keras_mtl.distillation.Distillation, got "
                    f"{type(distillation).__name__}."
                )
            distillation.attach(self)
        if getattr(method, "mode", None) == "representation":
            self._check_representation_mode()
        metrics = dict(metrics or {})
        unknown = sorted(set(metrics) - {t.name for t in self._tasks})
        if unknown:
            raise ValueError(
                f"`metrics` names unknown task(s) {unknown}; tasks are {[t.name for t in self._tasks]}."
            )
        task_metrics = {
            t.name: list(metrics[t.name]) if t.name in metrics else t.metrics()
            for t in self._tasks
        }
        if len(self._tasks) == 1:
            # Keras prefixes metric names with the output name only when there
            # are several outputs; one-task models keep the `<task>_` prefix too.
            ((name, ms),) = task_metrics.items()
            task_metrics = {name: [_renamed(m, f"{name}_") for m in ms]}
        # Metrics are "weighted" so that examples with a missing label (weight
        # 0) are left out of them, exactly as they are left out of the loss.
        super().compile(
            optimizer=optimizer,
            weighted_metrics=task_metrics,
            jit_compile=False,
            steps_per_execution=1 if steps_request == "auto" else int(steps_request),
            **kwargs,
        )
        _compat.set_untracked(self, "_jit_request", jit_request)
        _compat.set_untracked(self, "_steps_request", steps_request if steps_request == "auto" else int(steps_request))
        # The metrics as the user gave them, saved in the compile config
        # (Keras' own entry holds the per-task lists built from them). Not
        # tracked: the metrics Keras compiled are the model's, these are not.
        _compat.set_untracked(self, "_metrics_override", metrics or None)
        # As given, for the compile config (a plain dict: not tracked).
        _compat.set_untracked(self, "_learning_rate_multipliers", learning_rate_multipliers or None)
        # A tracked layer: its variables (e.g. learned log-variances) are
        # trained, checkpointed and saved with the model.
        self.weighting = method
        _compat.set_untracked(self, "distillation", distillation)
        # Weights that never change are logged without a step op.
        self._task_weight_tracker.constant = method.constant_weights()

    def _loss_weights_by_task(self, weights: Sequence[float]) -> dict[str, float]:
        """A list of loss weights as `{task: weight}`: Keras reads such a list in `output_names` order."""
        names = list(self.output_names)
        if len(weights) != len(names):
            raise ValueError(
                f"`loss_weights` has {len(weights)} weight(s) for {len(names)} task(s): as a list it "
                f"needs one weight per output, in the order of model.output_names {names}; or pass a "
                f"dict {{task: weight}}."
            )
        return dict(zip(names, weights))

    def get_compile_config(self) -> dict:
        config = super().get_compile_config()
        if config:
            config["weighting"] = keras.saving.serialize_keras_object(self.weighting)
            config["metrics_override"] = keras.saving.serialize_keras_object(
                self.__dict__.get("_metrics_override")
            )
            config["learning_rate_multipliers"] = self.__dict__.get("_learning_rate_multipliers")
            # As requested: "auto" is resolved again at each fit of the loaded model.
            config["jit_compile"] = self.__dict__.get("_jit_request", config.get("jit_compile"))
            config["steps_per_execution"] = self.__dict__.get("_steps_request", config.get("steps_per_execution"))
        return config

    def compile_from_config(self, config: dict) -> None:
        config = keras.saving.deserialize_keras_object(config)
        for key in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            config.pop(key, None)
        config["metrics"] = config.pop("metrics_override", None)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # --------------------------------------------------------- labels, loss
    def prepare_targets(self, y, y_pred, sample_weight=None, *, check: bool | None = None):
        """Labels and weights per task name, with missing labels zero-weighted.

        `y` is a dict keyed by the tasks' label keys (a single tensor is
        accepted for a one-task model); `sample_weight` is `None`, one tensor
        for all tasks, or a dict keyed by task name. `check` puts the label
        checks (see `Task.prepare`) in the graph; by default they are left
        out when `fit`/`evaluate` checked the data before the step (see
        `keras_mtl.data.batch_checks`). Within a step, the loss and the
        metrics share one preparation.
        """
        if check is None:
            check = self.__dict__.get("_step_checks", True)
        cached = self.__dict__.get("_prepared")
        if cached is not None and cached[0] is y and cached[1] is y_pred and cached[2] is sample_weight and cached[3] == check:
            return cached[4]
        prepared = self._prepare_targets(y, y_pred, sample_weight, check)
        # Kept for `compute_metrics` of the same step (the same objects), which drops it.
        self.__dict__["_prepared"] = (y, y_pred, sample_weight, check, prepared)
        return prepared

    def _prepare_targets(self, y, y_pred, sample_weight, check: bool):
        if not isinstance(y, Mapping):
            if len(self._tasks) != 1:
                raise ValueError(
                    "Labels must be a dict keyed by each task's label key "
                    f"{[t.label for t in self._tasks]}; got {type(y).__name__}."
                )
            y = {self._tasks[0].label: y}
        carried = {k: v for k, v in y.items() if isinstance(k, str) and k.startswith(_WEIGHT_KEY)}
        if carried:
            # Weights that fit/evaluate put into in-memory labels (see `_weights_into_labels`).
            y = {k: v for k, v in y.items() if k not in carried}
            sample_weight = {k[len(_WEIGHT_KEY):]: v for k, v in carried.items()}
        # Teachers' outputs are read by the distillation, not scored as labels.
        y = {k: v for k, v in y.items() if not (isinstance(k, str) and k.startswith(TEACHER_KEY))}
        known = {t.label for t in self._tasks} | {t.group for t in self._tasks if t.group is not None}
        unknown = sorted(set(y) - known)
        if unknown and self.unknown_labels == "raise":
            raise ValueError(
                f"Labels given for unknown task label key(s) {unknown}; the model's "
                f"tasks read {sorted(known)}. (Build the model with "
                "unknown_labels='ignore' to train on a subset of a dataset's tasks.)"
            )
        if isinstance(sample_weight, Mapping):
            self._check_weight_keys(sample_weight)
        labels, weights = {}, {}
        for task in self._tasks:
            if task.label not in y:
                raise ValueError(
                    f"No labels for task {task.name!r} (label key {task.label!r}). Every "
                    "task needs a label entry; mark unlabelled examples with the task's "
                    "missing marker (-1, or NaN for float labels)."
                )
            if task.group is not None and task.group not in y:
                raise ValueError(
                    f"No group ids for task {task.name!r} (Ranking): its labels need the key {task.group!r} "
                    "with each example's group (query, user) id."
                )
            sw = sample_weight.get(task.name) if isinstance(sample_weight, Mapping) else sample_weight
            labels[task.name], weights[task.name] = task.prepare(
                y[task.label], y_pred[task.name], sw, check=check
            )
        # Conditional tasks count only their sample space (their `given` task positive).
        return labels, conditions.sample_spaces(self._tasks, y, y_pred, labels, weights, check=check)

    def task_losses(
        self, y, y_pred, sample_weight=None, *, check: bool | None = None, x=None, training: bool = False
    ) -> tuple[dict, dict]:
        """Each task's masked mean loss (this replica's share of it under a strategy),
        and the number of labelled units behind it (over all replicas).

        In a training step (`training`) of a model compiled with a
        distillation, distilled tasks mix in their loss against the
        teachers' outputs for the batch `x` (see `keras_mtl.distillation`).
        """
        labels, weights = self.prepare_targets(y, y_pred, sample_weight, check=check)
        losses, counts = {}, {}
        for t in self._tasks:
            target, pred, weight = labels[t.name], y_pred[t.name], weights[t.name]
            if t.entire_space and t.given in y_pred:
                # ESMM: p(given) x p(task | given) against both positive, over every example.
                (target, weight), pred = conditions.joint_targets(t, labels, weights), conditions.joint_prediction(t, y_pred)
            scale = self._target_scales.get(t.name)
            if scale is not None:
                # A normalised regression task: the loss compares z-scores, whatever the label's scale.
                target, pred = scale.standardize(target), scale.standardize(pred)
            if t.group is not None:
                # A loss over the examples of each group (Ranking): not per example.
                losses[t.name], counts[t.name] = t.group_loss(target, pred, weight, y[t.group])
                continue
            unit = t.unit_losses(target, pred)
            if t.at_most is not None and t.at_most in y_pred:
                unit = unit + conditions.excess(t, y_pred)  # p(task) <= p(at_most), per labelled example
            losses[t.name], counts[t.name] = masking.masked_mean(unit, weight)
        distillation = self.__dict__.get("distillation")
        if training and distillation is not None:
            losses, counts = distillation.mix(self, x, y, y_pred, losses, counts)
        stopped = self.__dict__.get("_stopped_tasks")
        if training and stopped:
            # Tasks `callbacks.PerTaskEarlyStopping` stopped: logged, no longer trained on.
            losses = {name: tf.stop_gradient(v) if name in stopped else v for name, v in losses.items()}
        return losses, counts

    def _check_weight_keys(self, sample_weight: Mapping) -> None:
        names = [t.name for t in self._tasks]
        bad = sorted(set(sample_weight) - set(names))
        if bad:
            by_label = {t.label: t.name for t in self._tasks if t.label != t.name}
            hint = "".join(
                f" {k!r} is the label key of task {by_label[k]!r}: key its weights {by_label[k]!r}."
                for k in bad if k in by_label
            )
            raise ValueError(f"sample_weight names unknown task(s) {bad}; key it by task name, one of {names}.{hint}")

    def _weights_into_labels(self, y, sample_weight):
        """`(labels, None)` with per-task sample weights carried inside in-memory labels.

        Keras wants in-memory sample weights keyed like the labels, by label
        key, which cannot tell apart tasks that share a label key; keras_mtl
        keys them by task name. Carried in the labels under reserved keys,
        they reach `prepare_targets` intact (through `validation_split` and
        shuffling too). One array (not a dict) weighs every task alike.
        """
        if sample_weight is None or y is None:
            return y, sample_weight
        if not isinstance(y, Mapping):
            if len(self._tasks) != 1:
                return y, sample_weight  # prepare_targets names the problem
            y = {self._tasks[0].label: y}
        if isinstance(sample_weight, Mapping):
            self._check_weight_keys(sample_weight)
            weights = dict(sample_weight)
        else:
            weights = {t.name: sample_weight for t in self._tasks}
        labels = dict(y)
        labels.update({_WEIGHT_KEY + name: w for name, w in weights.items() if w is not None})
        return labels, None

    # ------------------------------------------------------- target scaling
    def adapt_targets(self, data, *, max_batches: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Sets every normalised regression task's label mean and std from training labels.

        `data` is the labels, as a dict keyed by label key (numpy columns,
        e.g. a loader's in-memory training labels; one array for a one-task
        model), or a `tf.data.Dataset` of `(features, labels[, weights])`
        batches, read once: all of it, or the first `max_batches` batches.
        A dataset of infinite or unknown size is read for `ADAPT_BATCHES`
        (100) batches unless `max_batches` says otherwise. Missing (NaN)
        labels are left out. The stats are set even where they were set
        before, and are saved with the model. Returns `{task: (mean, std)}`.
        `fit` calls this itself, on its training data, for tasks whose stats
        were never set.

        Example:
        >>> import keras_mtl as mtl
        >>> model = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Regression("hours", label="h")])
        >>> model.adapt_targets({"h": np.array([30, 50, np.nan])})
        {'hours': (array([40.]), array([10.]))}
        """
        return self._adapt([t for t in self._tasks if t.name in self._target_scales], data, max_batches)

    def _adapt(self, tasks: list, data, max_batches: int | None) -> dict:
        if not tasks:
            return {}
        moments = {t.name: TargetMoments(t) for t in tasks}
        if isinstance(data, tf.data.Dataset):
            spec = data.element_spec
            if not isinstance(spec, tuple) or len(spec) < 2:
                raise ValueError(
                    f"Task(s) {[t.name for t in tasks]} normalize their targets, but the dataset yields no "
                    "labels to compute their mean and std from (it needs (features, labels) elements)."
                )
            if max_batches is None and int(data.cardinality()) < 0:  # infinite or unknown
                max_batches = ADAPT_BATCHES
            keys = sorted({t.label for t in tasks})
            single = len(self._tasks) == 1 and not isinstance(spec[1], Mapping)
            if not single:
                self._labels_present(spec[1], tasks, "the dataset")
            labels = data.map(lambda *e: {k: e[1] if single else e[1][k] for k in keys})
            if max_batches is not None:
                labels = labels.take(max_batches)
            for batch in labels.as_numpy_iterator():
                for t in tasks:
                    moments[t.name].update(batch[t.label])
        else:
            if not isinstance(data, Mapping):
                if len(self._tasks) != 1:
                    raise ValueError(
                        "adapt_targets needs labels as a dict keyed by label key or a tf.data.Dataset; "
                        f"got {type(data).__name__}."
                    )
                data = {self._tasks[0].label: data}
            self._labels_present(data, tasks, "the labels")
            for t in tasks:
                moments[t.name].update(keras.ops.convert_to_numpy(data[t.label]))
        stats = {}
        for t in tasks:
            mean, std = moments[t.name].result()
            self._target_scales[t.name].set_stats(mean, std)
            stats[t.name] = (mean, std)
        return stats

    @staticmethod
    def _labels_present(labels, tasks, where: str) -> None:
        if not isinstance(labels, Mapping):
            raise ValueError(f"Labels in {where} must be a dict keyed by label key, got {type(labels).__name__}.")
        for t in tasks:
            if t.label not in labels:
                raise ValueError(
                    f"No labels for task {t.name!r} (label key {t.label!r}) in {where} to compute its "
                    f"target mean and std from; the labels are {sorted(labels)}."
                )

    def _adapt_before_fit(self, x, y, validation_split) -> None:
        """Sets the stats of normalised regression tasks never adapted, from fit's training data."""
        pending = [t for t in self._tasks if t.name in self._target_scales and not self._target_scales[t.name].adapted]
        if not pending:
            return
        if y is not None:
            if validation_split:
                # Keras holds out the last rows; the stats come from the rows it trains on.
                def head(v):
                    v = np.asarray(v)
                    return v[: int(np.floor(len(v) * (1.0 - validation_split)))]

                y = {k: head(v) for k, v in y.items()} if isinstance(y, Mapping) else head(y)
            self._adapt(pending, y, None)
        elif isinstance(x, tf.data.Dataset):
            self._adapt(pending, x, None)
        elif not (x is None or isinstance(x, (Mapping, np.ndarray, tf.Tensor))):
            # Generators, PyDatasets, distributed datasets: reading them would consume them.
            # (In-memory features without labels fail on the labels themselves.)
            raise ValueError(
                f"Task(s) {[t.name for t in pending]} normalize their targets, and fit cannot read the "
                f"labels from a {type(x).__name__} without using it up: call "
                "model.adapt_targets(training_labels) before fit, or pass normalize=False."
            )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.weighting is None:
            raise ValueError("Call `compile()` before training or evaluating the model.")
        losses, counts = self.task_losses(y, y_pred, sample_weight, x=x, training=training)
        shares = tf.stack([losses[t.name] for t in self._tasks])
        total, weights = self.weighting.combine(shares, masking.global_sum(shares), training)
        self._track_tasks(losses, counts, weights if training else None)
        if self.losses:
            total = total + masking.per_replica_share(tf.add_n(self.losses))
        return total

    def _track_tasks(self, losses, counts, weights=None):
        # Weighing each batch by its label count makes the epoch value the
        # true masked mean; trackers average over replicas, so the
        # share-of-global scaling is undone first.
        self._task_loss_tracker.update_state(
            masking.from_replica_share(tf.stack([losses[t.name] for t in self._tasks])),
            sample_weight=tf.stack([counts[t.name] for t in self._tasks]),
        )
        if weights is not None:
            self._task_weight_tracker.update_state(weights)

    def track_step(self, losses, counts, weights, total_share, x):
        """Updates the loss, per-task loss and per-task weight logs after a custom step."""
        self._track_tasks(losses, counts, weights)
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        _compat.loss_tracker(self).update_state(masking.from_replica_share(total_share), sample_weight=batch)

    # ---------------------------------------------------------------- steps
    def train_step(self, data):
        from keras_mtl import _finite as finite

        if self.weighting is not None and self.weighting.uses_gradients:
            from keras_mtl.weighting.step import gradient_train_step

            logs = gradient_train_step(self, data)
        else:
            logs = super().train_step(data)
        # After the update, in the step's own graph: StopOnNonFiniteLoss reads one
        # flag instead of reducing every weight in a call of its own per step.
        finite.record(self)
        return logs

    def test_step(self, data):
        logs = super().test_step(data)
        # Task weights, gate statistics and penalties describe training steps;
        # evaluation has none to report.
        return {k: v for k, v in logs.items() if k not in self._weight_log_names()}

    def _choose_jit(self, *data) -> None:
        """Resolves `jit_compile="auto"` (or a forced True) for the data about to be read."""
        request = self.__dict__.get("_jit_request", False)
        if request is False or self.run_eagerly:
            return
        features = [_features(d) for d in data if d is not None]
        split = self.preprocessing
        encoded = split is not None and bool(features) and all(split.accepts(f) for f in features)
        numeric = all(f is not None and _numeric(f) for f in features)
        distributed = _distributed(self)
        if request == "auto":
            # Measured (benchmarks/RESULTS.md, "Fast by default"): XLA pays for its compile
            # time on the encoded census step, gradient methods included; on
            # small raw-input models the compile costs more than a short run saves.
            # On CPU, XLA draws TensorFlow's default stateless random numbers (what
            # Keras' Dropout uses) many times slower than the TF kernels do.
            want = encoded and not distributed and not (_draws_random_numbers(self) and _cpu_only())
        else:
            want = bool(features) and numeric
        # Keras checks every layer, lookups included; an encoded step runs the core only.
        want = bool(want) and _compat.model_supports_jit(split.core if encoded else self)
        if want != self.jit_compile:
            _compat.set_jit_compile(self, want)
            self.train_function = self.test_function = self.predict_function = None

    def _choose_steps(self, callbacks, step_counts, kinds) -> None:
        """Resolves `steps_per_execution="auto"` for the call about to run (see `keras_mtl._execution`).

        `kinds` are the step functions the call runs (`"train"`, `"test"`,
        `"predict"`). Each keeps the steps per execution it was traced with:
        only one traced with other steps is traced again, so a `predict`
        between two `fit`s does not cost the second its trace.
        """
        if self.__dict__.get("_steps_request", 1) != "auto":
            return
        from keras_mtl import _execution

        # Keras' predict reads each batch in Python whatever the steps per
        # execution, so more would save little; one keeps predictions those
        # of the one-step function, to the last bit. Under a strategy, Keras
        # 3.15's multi-step loop fails for any model ("You must feed a value
        # for placeholder tensor 'while/body/.../while/cond/Placeholder'").
        if self.run_eagerly or "predict" in kinds or _distributed(self):
            want = 1
        else:
            want = _execution.auto_steps(callbacks, step_counts, kinds)
        self.steps_per_execution = want
        traced = self.__dict__.setdefault("_steps_traced", {})
        for kind in kinds:
            if getattr(self, f"{kind}_function") is None or traced.get(kind) != want:
                setattr(self, f"{kind}_function", None)
                traced[kind] = want

    def _check_in_step(self, on: bool) -> None:
        """Puts the label checks in the train/test step (`on`) or leaves them to the data (see `fit`)."""
        if self.__dict__.get("_step_checks", True) != on:
            _compat.set_untracked(self, "_step_checks", on)
            self.train_function = self.test_function = None

    def _weight_log_names(self):
        from keras_mtl.layers import training_only_log_names

        return set(self._task_weight_tracker.log_names) | training_only_log_names(self)

    def fit(self, x=None, y=None, *args, callbacks=None, validation_data=None, **kwargs):
        _ready_for_strategy(self)
        _check_data(self, x, "fit")
        if validation_data is not None:
            _check_data(self, validation_data, "fit(validation_data=...)")
        self._choose_jit(x, validation_data)
        given = x  # as the user passed it: SetEpoch reads a keras_mtl dataset's epoch variable
        x, checked = _checked_input(self, x, y, "the labels passed to fit")
        if validation_data is not None:
            validation_data, validation_checked = _checked_validation(self, validation_data)
            checked = checked and validation_checked
        self._check_in_step(not checked)
        self._adapt_before_fit(x, y, kwargs.get("validation_split"))
        if "sample_weight" in kwargs:
            y, kwargs["sample_weight"] = self._weights_into_labels(y, kwargs["sample_weight"])
        if isinstance(validation_data, tuple) and len(validation_data) == 3:
            vx, vy, vw = validation_data
            vy, vw = self._weights_into_labels(vy, vw)
            validation_data = (vx, vy) if vw is None else (vx, vy, vw)
        # Imported when fit runs: building a model needs neither keras_mtl.callbacks nor keras_mtl.data.
        from keras_mtl.callbacks.set_epoch import SetEpoch

        extra = self.weighting.callbacks() if self.weighting is not None else []
        # A shuffled keras_mtl dataset orders each epoch by Keras' epoch index,
        # so the order survives strategies and resumes (see `callbacks.SetEpoch`).
        if _shuffle_epoch(given) is not None and not any(isinstance(c, SetEpoch) for c in callbacks or []):
            extra.append(SetEpoch(given))
        callbacks = list(callbacks or []) + extra
        # fit(x, y, batch_size, epochs, verbose, callbacks, ...): callbacks or step counts
        # given by position are not looked into; they get one step per execution.
        counts = [kwargs.get("steps_per_epoch"), kwargs.get("validation_steps")] if len(args) <= 3 else [1]
        self._choose_steps(callbacks, counts, ("train", "test"))
        history = super().fit(x, y, *args, callbacks=callbacks, validation_data=validation_data, **kwargs)
        if history.epoch and not history.history:
            # Keras only warns ("ran out of data") and returns an empty history.
            raise ValueError(
                "fit ran no training step: the training data yielded no batches (an empty "
                "dataset, or a filter/take/shard that removed every example)."
            )
        return history

    def evaluate(self, x=None, y=None, *args, **kwargs):
        # Keras' fit calls evaluate for validation data that fit has already
        # checked and compiled for: changing the step then would drop the train
        # function fit is still using.
        if not kwargs.get("_use_cached_eval_dataset"):
            _ready_for_strategy(self)
            _check_data(self, x, "evaluate")
            if x is not None:
                self._choose_jit(x)
            # evaluate(x, y, batch_size, verbose, sample_weight, steps, callbacks, ...)
            counts = [kwargs.get("steps")] if len(args) < 4 else [1]
            self._choose_steps(kwargs.get("callbacks"), counts, ("test",))
            x, checked = _checked_input(self, x, y, "the labels passed to evaluate")
            self._check_in_step(not checked)
        if len(args) >= 3:  # evaluate(x, y, batch_size, verbose, sample_weight, ...)
            args = list(args)
            y, args[2] = self._weights_into_labels(y, args[2])
        elif "sample_weight" in kwargs:
            y, kwargs["sample_weight"] = self._weights_into_labels(y, kwargs["sample_weight"])
        # evaluate(x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict, ...)
        if len(args) > 5:
            args = list(args)
            return_dict, args[5] = args[5], True
        else:
            return_dict, kwargs["return_dict"] = kwargs.get("return_dict", False), True
        logs = super().evaluate(x, y, *args, **kwargs)
        if not logs:
            raise ValueError("evaluate saw no batches: the data is empty.")
        if _distributed(self):
            # `test_step` leaves out the training-only logs, so Keras returns the
            # last step's logs instead of its metrics: each replica's own
            # results, averaged, which is wrong wherever replicas saw different
            # numbers of labels. The metrics themselves sum over replicas.
            results = self.get_metrics_result()
            logs = {k: _plain(results[k]) if k in results else v for k, v in logs.items()}
        return logs if return_dict else _compat.flatten_metrics_in_order(self, logs)

    def predict(self, x, *args, **kwargs):
        _ready_for_strategy(self)
        _check_data(self, x, "predict")
        self._choose_jit(x)
        self._choose_steps(None, [], ("predict",))
        try:
            return super().predict(x, *args, **kwargs)
        except UnboundLocalError as e:  # Keras 3.15 on data that yields no batches
            if "batch_outputs" not in str(e):
                raise
            raise ValueError("predict saw no batches: the data is empty.") from None

    # ------------------------------------------------------- representation
    def call_with_representation(self, x, training=False):
        """`(outputs, shared representation)` from one forward pass (raw or encoded inputs)."""
        split = self.preprocessing
        encoded = split is not None and split.accepts(x)
        key = "_rep_model_encoded" if encoded else "_rep_model"
        rep_model = self.__dict__.get(key)
        if rep_model is None:
            targets = [self.output, self.get_layer(self.representation).output]
            rep_model = split.from_encoded(targets) if encoded else keras.Model(self.input, targets)
            # Not tracked: it shares this model's layers and must not be saved twice.
            _compat.set_untracked(self, key, rep_model)
        outputs, rep = rep_model(split.as_list(x) if encoded else x, training=training)
        return outputs, rep

    def _check_representation_mode(self):
        if not self.representation:
            raise ValueError(
                f"Model {self.name!r} records no shared representation; use mode='parameters'"
                + ("." if self.shared_variables else
                   " where tasks share trainable layers; here they share none (per-task adapters, a "
                   "frozen trunk), so use a loss-based method (fixed, uncertainty, dwa, ...).")
            )
        # Exact only if every path from a shared layer to a task output passes
        # through the representation: the step hands the shared layers the
        # gradient that reaches them there and nothing else. Other inputs of
        # the heads may bypass it when no shared layer feeds them (MMoE's gates
        # reading raw features, say).
        rep = self.get_layer(self.representation).output
        shared = set(self.shared_layers)
        bypassing, seen = set(), set()
        stack = list(tf.nest.flatten(self.outputs))
        while stack:
            tensor = stack.pop()
            if tensor is rep or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            op, node = encoding.producer(tensor)
            if op.name in shared:
                bypassing.add(op.name)
                continue
            stack.extend(node.input_tensors)
        if bypassing:
            raise ValueError(
                f"mode='representation' needs every task output of {self.name!r} to depend on the "
                f"shared variables only through layer {self.representation!r}, but shared layer(s) "
                f"{sorted(bypassing)} reach the outputs around or after it; use mode='parameters'."
            )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, weights = self.prepare_targets(y, y_pred, sample_weight)
        self.__dict__.pop("_prepared", None)  # the step is done with it: no graph tensors kept alive
        if self._joint_auc is not None:
            self._joint_auc.update_state(labels, y_pred, weights)
        if self._group_ndcg is not None:
            self._group_ndcg.update_state(y, labels, y_pred, weights)
        return super().compute_metrics(x, labels, y_pred, weights)

    # -------------------------------------------------------- serialization
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            tasks=[keras.saving.serialize_keras_object(t) for t in self._tasks],
            shared_layers=list(self.shared_layers),
            representation=self.representation,
            unknown_labels=self.unknown_labels,
        )
        return config


def _ready_for_strategy(model) -> None:
    """Readies Keras for the model's strategy, also one the user built by hand.

    Keras' fit fails under MirroredStrategy when a batch has string features,
    and under MultiWorkerMirroredStrategy at all (keras-team/keras#20585);
    `keras_mtl.distribute` holds the fix, applied once per process.
    """
    if isinstance(model.distribute_strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
        from keras_mtl import distribute

        distribute.apply_keras_multi_worker_fix()


def _plain(value):
    """A metric's result as Keras' evaluate returns it: a float, or an array."""
    value = np.asarray(keras.ops.convert_to_numpy(value))
    return float(value) if value.ndim == 0 else value


def _distributed(model: keras.Model) -> bool:
    """Whether `model` runs under a strategy other than the default one."""
    # A model built in a strategy's scope keeps that strategy (outside any
    # scope, `tf.distribute.get_strategy()` is the one default strategy).
    return tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy()


def _check_data(model: MultiTaskModel, data, where: str) -> None:
    """Names the input whose shape or dtype the model cannot take, before Keras builds a graph.

    Keras reports these from inside the graph ("Matrix size-incompatible",
    "Invalid dtype: str32"), naming neither the input nor what it expects.
    """
    if data is None:
        return
    if isinstance(data, tf.data.Dataset) and int(data.cardinality()) == 0:
        raise ValueError(f"{where}: the dataset is empty (0 batches).")
    if isinstance(data, tf.data.Dataset):
        data = data.element_spec
    if isinstance(data, tuple) and data:
        data = data[0]
    inputs = model.input
    if isinstance(inputs, Mapping):
        if not isinstance(data, Mapping):
            return
        pairs = [(k, inputs[k], data.get(k)) for k in inputs]
    elif isinstance(inputs, keras.KerasTensor):
        pairs = [(inputs.name, inputs, data)]
    else:
        return
    for name, tensor, value in pairs:
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            if value.shape[0] == 0:
                raise ValueError(f"{where}: input {name!r} has 0 rows; there is nothing to run on.")
            if value.dtype.kind == "U":
                raise ValueError(
                    f"{where}: input {name!r} is a numpy array of dtype {value.dtype}, which Keras "
                    f"does not take; the input expects {tensor.dtype}"
                    + (" (pass strings as np.asarray(values, dtype=object))." if tensor.dtype == "string" else ".")
                )
            if value.dtype.kind == "f":
                from keras_mtl.data.checks import check_features

                # A NaN feature would otherwise train silently into NaN weights.
                check_features({name: value}, f"the data passed to {where}")
            dtype, shape = tf.as_dtype(value.dtype) if value.dtype.kind != "O" else tf.string, value.shape
        elif isinstance(value, (tf.Tensor, tf.TensorSpec)):
            dtype, shape = value.dtype, value.shape
        else:
            continue
        wants_string = tensor.dtype == "string"
        if (dtype == tf.string) != wants_string:
            raise ValueError(
                f"{where}: input {name!r} expects {tensor.dtype} values of shape {tuple(tensor.shape)}, "
                f"got {dtype.name}."
            )
        want = tf.TensorShape(tensor.shape)[1:]
        got = tf.TensorShape(shape)[1:]
        mismatch = (
            want.rank == got.rank and not want.is_compatible_with(got)
        ) or (
            want.is_fully_defined() and got.is_fully_defined() and want.num_elements() != got.num_elements()
        )
        if mismatch:
            raise ValueError(
                f"{where}: input {name!r} expects shape {tuple(tensor.shape)} (batch first), got "
                f"{tuple(tf.TensorShape(shape))}."
            )


def _features(data):
    """The feature structure (tensors, arrays or specs) of what fit/evaluate/predict receive."""
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        return spec[0] if isinstance(spec, tuple) else spec
    if isinstance(data, tuple):
        return data[0]
    if isinstance(data, (Mapping, np.ndarray, tf.Tensor)):
        return data
    return None  # generators, PyDatasets: unknown until read


def _draws_random_numbers(model) -> bool:
    """Whether a layer of `model` draws random numbers (Dropout, GaussianNoise, ...): each
    such Keras layer owns a `SeedGenerator`, whose state is a non-trainable variable."""
    return any(v.name == "seed_generator_state" for v in model.non_trainable_variables)


def _cpu_only() -> bool:
    return not tf.config.list_logical_devices("GPU")


def _numeric(features) -> bool:
    for leaf in tf.nest.flatten(features):
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).kind in "OSU":
            return False
    return True


def _check_labels(model: MultiTaskModel, y, where: str) -> bool:
    """Checks in-memory label arrays eagerly (class ids in range, 0/1 labels, no inf); True if all were.

    Asserts in the step would cost every step its ops, vanish under XLA,
    and fail wrapped in a "Graph execution error"; labels in memory are
    known up front, so they fail here with the task, value and row.
    """
    from keras_mtl.data.checks import check_conditions, check_labels, has_labels

    if len(model.tasks) == 1 and not isinstance(y, Mapping):
        y = {model.tasks[0].label: y}
    if not isinstance(y, Mapping):
        return False
    checked = True
    # A distilled task learns from its teacher where it has no labels.
    distilled = set(model.distillation.tasks) if model.distillation is not None else set()
    for task in model.tasks:
        labels = y.get(task.label)
        if isinstance(labels, (tf.Tensor, list)):
            labels = np.asarray(labels)
        if isinstance(labels, np.ndarray):
            check_labels(task, labels, where, require_some=False)
            if labels.size and not has_labels(task, labels) and task.name not in distilled:
                warnings.warn(
                    f"Task {task.name!r} has no labels in {where}: every value is the missing marker, "
                    "so its loss is 0 and it learns nothing here.",
                    stacklevel=3,
                )
        else:
            checked = False
    if checked:
        check_conditions(model.tasks, {t.label: np.asarray(y[t.label]) for t in model.tasks}, where)
    return checked


def _shuffle_epoch(x):
    from keras_mtl.data.pipeline import shuffle_epoch

    return shuffle_epoch(x)


def _checked_input(model: MultiTaskModel, x, y, where: str):
    """`(x, checked)`: `x`, and whether its labels are checked before the step.

    Labels in memory are checked now, and datasets keras_mtl built from
    checked columns need no check. The step checks the labels of any other
    data (an assert per task, a few microseconds a step), unless it is
    XLA-compiled: XLA drops asserts, so a finite `tf.data` pipeline is then
    read once before training and checked (`keras_mtl.data.batch_checks.scan`),
    and an infinite one batch by batch as it is read (a map, whose set-up
    costs each iterator a few milliseconds). Generators and `PyDataset`s
    under XLA are not checked.
    """
    from keras_mtl.data.batch_checks import check_batches, checked_for, scan

    if isinstance(x, tf.data.Dataset):
        if checked_for(x, model.tasks):
            return x, True
        if not model.jit_compile:
            return x, False
        if int(x.cardinality()) >= 0:
            return scan(x, model.tasks, where.replace("the labels", "the dataset")), True
        return check_batches(x, model.tasks), True
    if y is None:
        # In-memory features without labels: there is nothing to check (and no
        # train or test step to run); others may yield labels in their batches.
        return x, x is None or isinstance(x, (Mapping, np.ndarray, tf.Tensor, list, tuple))
    return x, _check_labels(model, y, where)


def _checked_validation(model: MultiTaskModel, data):
    if isinstance(data, tuple) and len(data) in (2, 3):
        _, checked = _checked_input(model, data[0], data[1], "fit(validation_data=...) labels")
        return data, checked
    return _checked_input(model, data, None, "fit(validation_data=...)")


def _renamed(metric, prefix: str):
    metric = keras.metrics.get(metric) if isinstance(metric, str) else metric
    if not isinstance(metric, keras.metrics.Metric):
        metric = keras.metrics.MeanMetricWrapper(metric, name=getattr(metric, "__name__", "metric"))
    if metric.name.startswith(prefix):
        return metric
    return type(metric).from_config({**metric.get_config(), "name": prefix + metric.name})
