"""The one place where keras_mtl reaches into Keras and TensorFlow internals.

Every name, attribute or behaviour here is not part of Keras' or TensorFlow's
public API, so any release may move or change it. Each entry says why
keras_mtl needs it and which versions it was checked on; `tests/test_compat.py`
exercises each one and fails naming the installed Keras/TF version when one
breaks. Code elsewhere in keras_mtl calls these helpers instead of touching
the internals, so a new Keras release is checked by running one test file
and, when something breaks, fixed here.

Checked on keras 3.15.1 with tensorflow 2.21.0 (and keras 3.14.1 with
tensorflow 2.21.0, unless an entry says otherwise).

This module imports only keras and tensorflow (never keras_mtl), so that
`export.op_lint` can run it in a fresh interpreter with `runpy.run_path`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# ------------------------------------------------------------ attribute tracking
# `keras.layers.Layer.__setattr__` tracks what is assigned to a layer or model:
# layers become sublayers (saved, their weights counted), variables become the
# layer's weights, lists and dicts are wrapped in tracked containers. keras_mtl
# keeps some attributes outside that tracking: the model's own output layers
# indexed by task, cached sub-models sharing the model's layers (which must not
# be saved twice), the non-finite record's variables (not part of a saved
# model), and a callback's temporary `save` wrapper. Python's
# `object.__setattr__` skips Keras' hook; Keras offers no public way to say
# "do not track this" (its own `DotNotTrackScope` and
# `no_automatic_dependency_tracking` are internal).


def set_untracked(obj, name: str, value) -> None:
    """Sets `obj.name = value` without Keras' (or TensorFlow's) attribute tracking."""
    object.__setattr__(obj, name, value)


# ---------------------------------------------------------------- XLA choice
# `MultiTaskModel` decides per fit whether to XLA-compile the step. When the
# step reads features encoded once, it runs only the model's core (no string
# lookups), so the check must be made on the core: Keras' public
# `model.jit_compile = True` setter checks the whole model (lookups included)
# and turns itself off with a warning. `model_supports_jit` is the check
# Keras makes (every layer's `supports_jit`, no XLA under op determinism, none
# on Apple-silicon GPUs); `_jit_compile` is what the setter writes after it.


def model_supports_jit(model: keras.Model) -> bool:
    """Keras' own check whether every layer of `model` can run under XLA."""
    from keras.src.trainers.trainer import model_supports_jit as _supports

    return bool(_supports(model))


def set_jit_compile(model: keras.Model, value: bool) -> None:
    """Sets `model.jit_compile` without the setter's whole-model check (the caller made the right one)."""
    model._jit_compile = bool(value)


# ----------------------------------------------------------------- loss log
# A custom train step (the gradient weighting methods) must update the
# tracker behind Keras' built-in `loss` log, or `loss` reads 0. Keras keeps it
# as `Trainer._loss_tracker` (a `keras.metrics.Mean` named "loss", created by
# `compile`) and exposes it only inside the `model.metrics` list.


def loss_tracker(model: keras.Model) -> keras.metrics.Metric:
    """The `Mean` metric behind the compiled model's `loss` log."""
    return model._loss_tracker


# ------------------------------------------------------------- output logits
# Keras' sigmoid and softmax (TF backend) attach their input to the output
# tensor as `_keras_logits`; its cross-entropies read it and compute the loss
# from the logits (one fused op, exact for saturated outputs) instead of
# clipping the probabilities and taking logs. Any reshape of the output drops
# the attribute. A task scoring each output unit separately adds a trailing
# axis of 1, and carries the logits over with it.


def expand_keeping_logits(output: tf.Tensor) -> tf.Tensor:
    """`output` with a trailing axis of 1, carrying Keras' logits (if any) along."""
    expanded = tf.expand_dims(output, -1)
    logits = getattr(output, "_keras_logits", None)
    if logits is not None:
        expanded._keras_logits = tf.expand_dims(logits, -1)
    return expanded


# ---------------------------------------------------------- functional graph
# keras_mtl reads the graph a Functional model was built from (which layer
# produced a tensor and from which inputs): to split the weightless
# preprocessing front from the model, to find the shared representation's
# paths, to find which experts a gate mixes, to find a soft-sharing column's
# layers. Keras has no public API for a KerasTensor's producer; it keeps it in
# `tensor._keras_history` (operation, node_index, tensor_index) and the
# operation's nodes in `operation._inbound_nodes`.


def keras_history(tensor):
    """`(operation, node_index, tensor_index)` of the layer call that produced a KerasTensor, or None."""
    return getattr(tensor, "_keras_history", None)


def inbound_node(operation, node_index: int = 0):
    """The `node_index`-th call of `operation` in a Functional graph (a Keras `Node`)."""
    return operation._inbound_nodes[node_index]


# -------------------------------------------------------- input conversion
# `Layer.__call__` converts its positional arguments to tensors (casting
# KerasTensors to the layer's dtype) unless `_convert_input_args` is False.
# `layers.SoftSharingPenalty` finds each column's layers through the Keras
# history of its inputs, so they must arrive as the producers' own tensors.


def keep_input_tensors(layer: keras.layers.Layer) -> None:
    """Makes `layer.__call__` pass its inputs through as given (no conversion or cast)."""
    layer._convert_input_args = False


# ------------------------------------------------------------- FeatureSpace
# `keras.utils.FeatureSpace` accepts, besides its own kinds, any instance of
# its feature class (its constructor checks isinstance), which Keras does not
# export. keras_mtl's embedded kinds subclass it. The class is taken from
# what the public `FeatureSpace.feature(...)` returns, so a move of the
# module inside Keras does not break it; a change of the class would. (No
# preprocessor: building a layer here would take an auto-generated layer name.)
FeatureSpaceFeature = type(keras.utils.FeatureSpace.feature(dtype="float32", preprocessor=None, output_mode="float"))

# keras_mtl's `FeatureSpace.adapt` adapts from in-memory columns in one pass
# (Keras' reads a dataset once per feature), and then does the bookkeeping
# Keras' `adapt` does: it lists the preprocessors that need adapting with
# `_list_adaptable_preprocessors()`, marks the space adapted (`_is_adapted`),
# builds its encoded outputs, and then marks its sublayers built
# (`_sublayers_built`, which `_merge_features` reads: the order matters).


def adaptable_preprocessors(feature_space) -> list[str]:
    """Names of the features whose preprocessors `FeatureSpace.adapt` must adapt."""
    return list(feature_space._list_adaptable_preprocessors())


def finish_adapt(feature_space) -> None:
    """What Keras' `FeatureSpace.adapt` does once every preprocessor is adapted, in its order."""
    feature_space._is_adapted = True
    feature_space.get_encoded_features()
    feature_space.built = True
    feature_space._sublayers_built = True


# ----------------------------------------------------------------- Graphviz
# `keras.utils.plot_model` raises when pydot or Graphviz's `dot` is missing;
# keras_mtl skips the diagram instead. Keras' own `check_graphviz` is exactly
# the check plot_model makes (it tries pydot_ng and pydotplus too), so it
# never says yes where plot_model would raise.


def graphviz_available() -> bool:
    """Whether `keras.utils.plot_model` can draw here (Keras' own check)."""
    from keras.src.utils.model_visualization import check_graphviz

    return bool(check_graphviz())


# ------------------------------------------------------------ nested layers
# Keras' own `Model.quantize` walks every layer inside a model, sublayers of
# layers included (`ScaledDense`'s inner Dense, a nested model's layers), with
# `Layer._flatten_layers`, and quantizes those without sublayers of their own.
# `export.quantization` walks the same layers to report which were quantized
# and which were left in float; the public `Model.layers` lists only the top
# level. It tells a layer's learned weights (kernels) from its statistics
# (normalisation means, ScaledDense's label scale) by the list `add_weight`
# put them in, `Layer._trainable_variables`: freezing a layer turns every
# variable's public `trainable` flag off but leaves that list as it was.
# Checked on keras 3.15.1.


def sublayers(layer: keras.layers.Layer, recursive: bool = True) -> list:
    """The layers inside `layer` (not `layer` itself), as `Model.quantize` walks them."""
    return list(layer._flatten_layers(include_self=False, recursive=recursive))


def created_trainable(layer: keras.layers.Layer) -> list:
    """The variables `layer` itself (not a sublayer) created trainable, whether frozen since or not."""
    return list(layer._trainable_variables)


# ------------------------------------------------------------ wrapped calls
# Per-task LoRA (`_task_lora.AdapterSwitch`) adds a task's adapter update to
# the output of a KerasHub backbone's attention projections, layers deep
# inside the backbone's own call. Keras has no hook on a sublayer's output;
# `Operation.__call__` and `Layer.__call__` (and the symbolic path,
# `compute_output_spec`) call `self.call`, so a `call` set on the instance
# runs in its place for that layer only, without changing its class, its
# saved config or where its variables are saved. `Layer.__init__` read the
# signature of the original `call` (training argument), which the wrapper
# keeps. Checked on keras 3.15.1.


def wrap_call(layer: keras.layers.Layer, wrap) -> None:
    """Replaces `layer.call` on this instance with `wrap(original_call)`."""
    set_untracked(layer, "call", wrap(layer.call))


# ------------------------------------------------------------ op registry
# `export.op_lint` needs the names of every op TensorFlow's runtime has
# registered (and those the tensorflow-text library adds) to tell which ops
# of an export TF Serving can run. TensorFlow has no public API that lists
# the op registry; its C API `TF_GetAllOpList` does, reached from Python
# through `pywrap_tf_session`.


def registered_op_names() -> set[str]:
    """Names of every op registered in this process's TensorFlow runtime."""
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session as c_api

    ops = op_def_pb2.OpList()
    ops.ParseFromString(c_api.TF_GetBuffer(c_api.TF_GetAllOpList()))
    return {op.name for op in ops.op}


# ------------------------------------------------------------ host variables
# A shuffled keras_mtl dataset reads its epoch from a variable that must stay
# a plain host variable even when created inside a strategy scope: each
# process's input pipeline reads its own copy. `tf.Variable(...)` inside a
# scope goes through the strategy's variable creator and becomes a mirrored
# variable; constructing `ResourceVariable` directly bypasses the creator
# stack, and TensorFlow has no public way to step out of a strategy scope.


def host_variable(initial_value, dtype, name: str) -> tf.Variable:
    """A non-trainable variable on this host's CPU that no distribution strategy mirrors."""
    from tensorflow.python.ops import resource_variable_ops

    with tf.init_scope(), tf.device("/cpu:0"):
        return resource_variable_ops.ResourceVariable(initial_value, dtype=dtype, trainable=False, name=name)


# ------------------------------------------ SavedModel variables, once
# keras-team/keras#23553 (open): `ExportArchive.track(model)` lists the
# model's Keras variables (wrappers) in the archive's `variables` lists, while
# the endpoints capture the `tf.Variable`s inside them, which `write_out`
# lists again in `_all_variables`. Two trackable objects per weight defeat the
# checkpoint's de-duplication: every weight is written twice, and every
# process that loads the SavedModel (TF Serving included) restores two live
# copies. Listing the `tf.Variable`s themselves (what the pending fix,
# keras-team/keras#23563, does) leaves one object per weight.


def track_variables_once(archive: keras.export.ExportArchive) -> None:
    """Makes a tracked archive list each weight's own `tf.Variable` rather than its Keras wrapper."""
    trackable = archive._tf_trackable
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        inner = [_tf_variable(v) for v in getattr(trackable, name)]
        setattr(trackable, name, inner)


def _tf_variable(variable):
    value = variable.value if isinstance(variable, keras.Variable) else variable
    return value if isinstance(value, tf.Variable) else variable


# ------------------------------------------ Keras fit under multi-worker
# keras-team/keras#20585 (open): Keras 3 `fit` breaks under
# MultiWorkerMirroredStrategy in two functions of
# keras/src/backend/tensorflow/trainer.py:
#  1. `TensorFlowTrainer._maybe_symbolic_build` all-reduces a whole data batch
#     just to learn its shapes, which fails for multi-worker PerReplica batches
#     (and, under MirroredStrategy too, for string features); the first local
#     replica's batch has the shapes it needs.
#  2. `reduce_per_replica(..., "auto")` reduces scalar logs with axis=0 under
#     multi-worker collectives; metric results are already synchronised, so a
#     scalar is reduced with axis=None.
# Both are replaced for the whole process (there is no per-model hook);
# `keras_mtl.distribute` decides when. Checked on keras 3.15.1 only (the
# multi-worker test runs two worker processes on 127.0.0.1).


def patch_multi_worker_fit() -> None:
    """Replaces Keras' `reduce_per_replica` and `TensorFlowTrainer._maybe_symbolic_build` (see above)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if tf_trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):

            def _reduce(v):
                if not tf_trainer._is_per_replica_instance(v):
                    return v
                rank = v.values[0].shape.rank
                return strategy.reduce("MEAN", v, axis=None if rank == 0 else 0)

            return tf.nest.map_structure(_reduce, values)
        return original_reduce(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues)
                    else v,
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build


# ------------------------------------------------------- checkpoint callbacks
# `callbacks.AtomicModelCheckpoint` and `callbacks.AtomicBackupAndRestore`
# keep Keras' decisions of when and where to save and replace only the write.
# They override hooks Keras does not document: `ModelCheckpoint._save_model(
# epoch, batch, logs)`, `BackupAndRestore._save_model()` and `_load_model()`
# (tests/test_compat.py checks these still exist and are called), and read
# BackupAndRestore's own state below. On restore, Keras' `fit` starts from
# `model._initial_epoch` when it is set, which is how Keras' own
# BackupAndRestore resumes; there is no public way to say it from a callback.


def backup_metadata_path(callback: keras.callbacks.BackupAndRestore) -> str:
    """The path of the backup's `training_metadata.json` that Keras' BackupAndRestore chose."""
    return callback._training_metadata_path


def backup_position(callback: keras.callbacks.BackupAndRestore) -> tuple[int, int]:
    """`(epoch, batch)` that Keras' BackupAndRestore would write in its metadata now."""
    return callback._current_epoch, callback._last_batch_seen


def set_resume_epoch(model: keras.Model, epoch: int) -> None:
    """Makes the `fit` that is starting begin at `epoch` (as Keras' BackupAndRestore does on restore)."""
    model._initial_epoch = epoch


# ------------------------------------------------------------------ evaluate
# `MultiTaskModel.evaluate` asks Keras for a dict and, without `return_dict`,
# gives back the list Keras would have: Keras orders it in a private method.


def flatten_metrics_in_order(model: keras.Model, logs: dict):
    """`evaluate`'s logs as the list (or one value) Keras returns without `return_dict`."""
    return model._flatten_metrics_in_order(logs)


# ---------------------------------------------------------------- TensorBoard
# `callbacks.LeanTensorBoard` writes per-epoch scalars itself, which is only
# safe when Keras' TensorBoard writes nothing per batch: neither the train
# graph nor a profiler trace. Keras keeps those decisions in the private flags
# `_should_write_train_graph` and `_should_trace`; when a Keras version lacks
# them the answer is "it may", and keras_mtl defers to Keras' own writing.


def tensorboard_writes_per_batch(callback: keras.callbacks.TensorBoard) -> bool:
    """Whether Keras' TensorBoard may still write the train graph or a profile trace (True if unknown)."""
    return not (
        getattr(callback, "_should_write_train_graph", True) is False
        and getattr(callback, "_should_trace", True) is False
    )


def tensorboard_profiles(callback: keras.callbacks.TensorBoard) -> bool:
    """Whether Keras' TensorBoard may still trace a profile of batches it counts (True if unknown).

    `steps_per_execution="auto"` keeps one step per execution for it: its
    `profile_batch` counts calls of the batch hooks, not steps.
    """
    return getattr(callback, "_should_trace", True) is not False


# ------------------------------------------------------------------- LazyAdam
# `optimizers.LazyAdam` updates only the rows an embedding gradient names, in
# Adam's own slot variables (so checkpoints and `Adam` stay interchangeable).
# Keras' Adam keeps them in `_momentums`, `_velocities` and `_velocity_hats`,
# indexed by `_get_variable_index(variable)`: the pattern of every Keras
# optimizer's `update_step`, with no public accessor. LazyAdam also overrides
# the hook `_clip_gradients` (called by `apply`; tests/test_compat.py checks
# it still is) and clips each gradient with Keras' own `_clip_by_norm`.


def adam_slots(optimizer: keras.optimizers.Adam, variable) -> tuple:
    """`(m, v, v_hat)`: Adam's first and second moment of `variable` (v_hat None without amsgrad)."""
    index = optimizer._get_variable_index(variable)
    v_hat = optimizer._velocity_hats[index] if optimizer.amsgrad else None
    return optimizer._momentums[index], optimizer._velocities[index], v_hat


def clip_by_norm(optimizer: keras.optimizers.Optimizer, gradient):
    """`gradient` clipped to the optimizer's `clipnorm`, as Keras clips each gradient."""
    return optimizer._clip_by_norm(gradient)


# -------------------------------------------------- learning-rate multipliers
# `MultiTaskModel.compile(learning_rate_multipliers=...)` updates chosen
# variables with the optimizer's learning rate times a factor (a smaller rate
# for a pretrained backbone than for the heads). Keras has no per-variable
# learning rate, but every Keras 3 optimizer computes its update in the
# documented `update_step(gradient, variable, learning_rate)`, called once per
# variable with the step's rate (a schedule's value at this step); scaling that
# argument is exactly training the variable at the scaled rate (momenta and
# Adam's moments included). So the optimizer *instance* gets its own
# `update_step` that scales the rate and calls its class's. On TensorFlow the
# variable it receives is the `tf.Variable` under the Keras one, or a
# component of a MirroredVariable: variables are recognised by the key the
# optimizer indexes its own slots with, `_var_key`, the same for all of these.
# Decoupled weight decay (`weight_decay=`, AdamW) is applied before the updates
# by `_apply_weight_decay(variables)` as `variable -= variable * weight_decay *
# learning_rate` with the unscaled rate. The instance's `_apply_weight_decay`
# leaves the scaled variables out, and their `update_step` decays them first
# with the scaled rate: Keras' formula and order (decay, then update). An
# optimizer with a decay rule of its own (Muon: a second decay for its Adam
# variables) and a weight decay set is refused; so is `MultiOptimizer`, whose
# inner optimizers do the updates.
# Checked on keras 3.15.1 (and 3.14.1).

_MULTIPLIED = ("update_step", "_apply_weight_decay")


def _keras_weight_decay_rules() -> set:
    """Keras' own `_apply_weight_decay` methods (base optimizer and TensorFlow backend)."""
    return {
        cls.__dict__["_apply_weight_decay"]
        for cls in keras.optimizers.Optimizer.__mro__
        if "_apply_weight_decay" in cls.__dict__
    }


def set_learning_rate_multipliers(optimizer: keras.optimizers.Optimizer, multipliers) -> None:
    """Makes `optimizer` update each variable of `multipliers` (`(variable, factor)` pairs) at its
    learning rate times `factor`, the others as before; an empty `multipliers` undoes it.

    A `LossScaleOptimizer` (mixed precision) passes it to the optimizer it wraps.
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    if multipliers:  # checked before the old multipliers go: a refusal changes nothing
        multi = getattr(keras.optimizers, "MultiOptimizer", None)
        if multi is not None and isinstance(optimizer, multi):
            raise ValueError(
                "learning_rate_multipliers cannot be combined with a keras.optimizers.MultiOptimizer: its "
                "inner optimizers update the variables; give each of them its own learning rate instead."
            )
        own_decay = type(optimizer)._apply_weight_decay not in _keras_weight_decay_rules()
        decays = [n for n in ("weight_decay", "adam_weight_decay") if getattr(optimizer, n, None) is not None]
        if own_decay and decays:
            raise ValueError(
                f"learning_rate_multipliers cannot scale the weight decay of {type(optimizer).__name__} "
                f"({', '.join(f'{n}={getattr(optimizer, n)!r}' for n in decays)}): it applies its own decay "
                f"rule. Pass {', '.join(f'{n}=None' for n in decays)}, or use an optimizer with Keras' decoupled "
                "weight decay (AdamW)."
            )
    for name in _MULTIPLIED:
        optimizer.__dict__.pop(name, None)
    if not multipliers:
        return
    scales = {optimizer._var_key(variable): float(factor) for variable, factor in multipliers}
    # Keys of the scaled variables Keras would decay; filled by `_apply_weight_decay`
    # (which sees the Keras variables, whose names the exclusion patterns match).
    decayed = set()
    update = type(optimizer).update_step
    decay = type(optimizer)._apply_weight_decay

    def update_step(gradient, variable, learning_rate):
        key = optimizer._var_key(variable)
        scale = scales.get(key)
        if scale is not None:
            learning_rate = tf.convert_to_tensor(learning_rate)
            learning_rate = learning_rate * tf.constant(scale, learning_rate.dtype)
            if key in decayed:
                # Keras' decoupled weight decay (TensorFlow backend), at the scaled rate.
                lr = tf.cast(learning_rate, variable.dtype)
                wd = tf.cast(optimizer.weight_decay, variable.dtype)
                variable.assign_sub(variable * wd * lr)
        return update(optimizer, gradient, variable, learning_rate)

    def _apply_weight_decay(variables):
        if optimizer.weight_decay is None:
            return decay(optimizer, variables)
        rest = []
        for variable in variables:
            key = optimizer._var_key(variable)
            if key not in scales:
                rest.append(variable)
            elif optimizer._use_weight_decay(variable):
                decayed.add(key)
        return decay(optimizer, rest)

    set_untracked(optimizer, "update_step", update_step)
    set_untracked(optimizer, "_apply_weight_decay", _apply_weight_decay)

