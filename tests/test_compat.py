"""Each Keras/TF internal keras_mtl relies on (`keras_mtl._compat`), exercised.

When a Keras or TensorFlow release moves or changes one, the test for it
fails naming the installed versions and the internal, so an upgrade is
checked by running this file. The last test keeps the internals in
`_compat.py`: no other module of keras_mtl may reach into them.
"""

import ast
import inspect
import json
import pathlib
import re
import runpy

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import _compat

VERSIONS = f"Keras {keras.__version__} with TensorFlow {tf.__version__}"
PACKAGE = pathlib.Path(_compat.__file__).parent


def _dense_model(inputs=2):
    x = keras.Input((inputs,))
    return keras.Model(x, keras.layers.Dense(1, name="out")(x))


# ------------------------------------------------------------ attribute tracking
def test_set_untracked_keeps_layers_out_of_keras_tracking():
    parent = keras.layers.Layer()
    tracked, hidden = keras.layers.Dense(1), keras.layers.Dense(1)
    tracked.build((None, 2))
    hidden.build((None, 2))
    parent.tracked = tracked
    assert len(parent.weights) == 2, (
        f"{VERSIONS}: assigning a layer to a layer attribute no longer tracks its weights; "
        "keras_mtl._compat.set_untracked may no longer be needed (or tracking moved)."
    )
    _compat.set_untracked(parent, "hidden", hidden)
    assert parent.hidden is hidden
    assert len(parent.weights) == 2, f"{VERSIONS}: object.__setattr__ no longer bypasses Keras' tracking."


def test_set_untracked_sub_model_is_not_saved_with_the_model():
    model = _dense_model()
    before = len(model.weights)
    _compat.set_untracked(model, "_cached", _dense_model())
    assert len(model.weights) == before and len(model.layers) == 2, f"{VERSIONS}: untracked sub-model was tracked."


# ---------------------------------------------------------------- XLA choice
def test_model_supports_jit_is_keras_own_check():
    assert _compat.model_supports_jit(_dense_model()) is True, f"{VERSIONS}: a Dense model no longer supports jit."
    x = keras.Input((1,), dtype="string")
    lookup = keras.Model(x, keras.layers.StringLookup(vocabulary=["a", "b"])(x))
    assert _compat.model_supports_jit(lookup) is False, (
        f"{VERSIONS}: keras.src.trainers.trainer.model_supports_jit says a StringLookup model can be "
        "XLA-compiled; keras_mtl's jit_compile='auto' relies on it saying no."
    )


def test_set_jit_compile_sets_what_the_train_function_reads():
    x = keras.Input((1,), dtype="string")
    ids = keras.layers.StringLookup(vocabulary=["a", "b"])(x)
    model = keras.Model(x, keras.layers.Dense(1)(keras.ops.cast(ids, "float32")))
    model.compile(optimizer="sgd", loss="mse", jit_compile=False)
    with pytest.warns(UserWarning):
        model.jit_compile = True  # the public setter checks the whole model (lookup included)...
    assert model.jit_compile is False
    _compat.set_jit_compile(model, True)  # ...the encoded step runs only the core, so keras_mtl decides
    assert model.jit_compile is True, f"{VERSIONS}: Model.jit_compile no longer reads `_jit_compile`."
    _compat.set_jit_compile(model, False)
    assert model.jit_compile is False


# ----------------------------------------------------------------- loss log
def test_loss_tracker_is_the_metric_behind_the_loss_log():
    model = _dense_model()
    model.compile(optimizer="sgd", loss="mse")
    tracker = _compat.loss_tracker(model)
    assert isinstance(tracker, keras.metrics.Mean) and tracker.name == "loss", (
        f"{VERSIONS}: Trainer._loss_tracker is no longer the Mean named 'loss'."
    )
    assert any(m is tracker for m in model.metrics), f"{VERSIONS}: the loss tracker is not in model.metrics."
    logs = model.evaluate(np.ones((4, 2)), np.ones((4, 1)), verbose=0, return_dict=True)
    assert float(tracker.result()) == pytest.approx(logs["loss"]), f"{VERSIONS}: 'loss' log not read from it."


# ---------------------------------------------------------- functional graph
def test_keras_history_and_inbound_node_describe_the_graph():
    x = keras.Input((3,), name="x")
    dense = keras.layers.Dense(2, name="d")
    y = dense(x)
    history = _compat.keras_history(y)
    assert history is not None, f"{VERSIONS}: KerasTensor no longer has `_keras_history`."
    assert history.operation is dense and history.node_index == 0 and history.tensor_index == 0, (
        f"{VERSIONS}: `_keras_history` is no longer (operation, node_index, tensor_index): {history!r}"
    )
    node = _compat.inbound_node(dense, history.node_index)
    assert node.input_tensors[0] is x, f"{VERSIONS}: `_inbound_nodes[i].input_tensors` changed."
    # layers.gate_usage reads a call's arguments.
    assert node.arguments.keras_tensors[0] is x and node.arguments.args[0] is x, (
        f"{VERSIONS}: Node.arguments no longer holds the call's keras_tensors/args."
    )
    assert _compat.keras_history(np.ones(3)) is None


def test_keep_input_tensors_passes_inputs_uncast():
    class Probe(keras.layers.Layer):
        def compute_output_spec(self, x):
            self.seen = x
            return keras.KerasTensor(x.shape, x.dtype)

        def call(self, x):
            return x

    x = keras.Input((2,), dtype="float32")
    converting = Probe(dtype="float64")
    converting(x)
    assert converting.seen is not x, (
        f"{VERSIONS}: Layer.__call__ no longer converts its inputs; keep_input_tensors may be unneeded."
    )
    kept = Probe(dtype="float64")
    _compat.keep_input_tensors(kept)
    kept(x)
    assert kept.seen is x, f"{VERSIONS}: setting `_convert_input_args = False` no longer keeps the input tensor."


# ------------------------------------------------------------- FeatureSpace
def test_feature_space_takes_subclasses_of_its_feature_class():
    assert isinstance(keras.utils.FeatureSpace.float_normalized(), _compat.FeatureSpaceFeature)

    class Sub(_compat.FeatureSpaceFeature):
        """A feature kind of keras_mtl's own, as preprocessing.FeatureSpace defines them."""

    space = keras.utils.FeatureSpace({"x": Sub("float32", keras.layers.Identity(), "float")}, output_mode="dict")
    assert isinstance(space.features["x"], Sub), f"{VERSIONS}: FeatureSpace no longer keeps a Feature subclass."
    assert issubclass(mtl.preprocessing.EmbeddedFeature, _compat.FeatureSpaceFeature)


def test_one_pass_adapt_matches_keras_adapt():
    data = {"x": np.array([[1.0], [2.0], [6.0]]), "c": np.array([[3], [1], [3]])}
    spec = {"x": "float_normalized", "c": "integer_categorical"}
    keras_space = keras.utils.FeatureSpace(spec, output_mode="concat")
    keras_space.adapt(tf.data.Dataset.from_tensor_slices(data).batch(3))

    space = keras.utils.FeatureSpace(spec, output_mode="concat")
    names = _compat.adaptable_preprocessors(space)
    assert sorted(names) == ["c", "x"], f"{VERSIONS}: FeatureSpace._list_adaptable_preprocessors changed: {names}"
    for name in names:
        space.preprocessors[name].adapt(data[name])
    _compat.finish_adapt(space)
    assert space.built
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(space(data)),
        keras.ops.convert_to_numpy(keras_space(data)),
        err_msg=f"{VERSIONS}: FeatureSpace.adapt's bookkeeping changed (_is_adapted, _sublayers_built).",
    )


# ----------------------------------------------------------------- Graphviz
def test_graphviz_check_agrees_with_plot_model(tmp_path):
    available = _compat.graphviz_available()
    assert isinstance(available, bool)
    path = tmp_path / "m.png"
    if available:
        keras.utils.plot_model(_dense_model(), to_file=str(path))
        assert path.is_file()
    else:
        with pytest.raises(ImportError):
            keras.utils.plot_model(_dense_model(), to_file=str(path))


# ------------------------------------------------------------ op registry
def test_registered_op_names_lists_the_registry():
    ops = _compat.registered_op_names()
    assert {"MatMul", "EagerPyFunc", "StringToHashBucketFast"} <= ops and len(ops) > 1000, (
        f"{VERSIONS}: tensorflow.python.client.pywrap_tf_session.TF_GetAllOpList no longer lists the ops "
        f"({len(ops)} found)."
    )


def test_compat_runs_by_path_without_keras_mtl():
    # export.op_lint runs this file with runpy in a fresh interpreter.
    tree = ast.parse(pathlib.Path(_compat.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "keras_mtl" not in imported
    assert "MatMul" in runpy.run_path(_compat.__file__)["registered_op_names"]()


# ------------------------------------------------------------ host variables
def test_host_variable_is_not_mirrored_in_a_strategy_scope():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = tf.Variable(0, dtype=tf.int64)
        host = _compat.host_variable(0, tf.int64, "epoch")
    assert isinstance(mirrored, tf.distribute.DistributedValues), "a tf.Variable in a scope is mirrored"
    assert not isinstance(host, tf.distribute.DistributedValues), (
        f"{VERSIONS}: a ResourceVariable built directly in a strategy scope is now mirrored."
    )
    assert not host.trainable and "CPU" in host.device.upper()
    host.assign_add(2)
    assert int(host.numpy()) == 2


# ------------------------------------------ Keras fit under multi-worker
def test_multi_worker_patch_targets_exist():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    for name in ("reduce_per_replica", "_collective_all_reduce_multi_worker", "_is_per_replica_instance"):
        assert callable(getattr(tf_trainer, name, None)), f"{VERSIONS}: keras.src.backend.tensorflow.trainer.{name} is gone."
    trainer = tf_trainer.TensorFlowTrainer
    assert list(inspect.signature(tf_trainer.reduce_per_replica).parameters) == ["values", "strategy", "reduction"]
    assert list(inspect.signature(trainer._maybe_symbolic_build).parameters) == ["self", "iterator", "data_batch"], (
        f"{VERSIONS}: TensorFlowTrainer._maybe_symbolic_build changed its signature."
    )
    assert "data_batch" in inspect.signature(trainer._symbolic_build).parameters, (
        f"{VERSIONS}: Trainer._symbolic_build(data_batch=...) changed."
    )


@pytest.mark.slow
def test_multi_worker_patch_fits_under_a_strategy():
    from keras.src.backend.tensorflow import trainer as tf_trainer

    mtl.distribute.apply_keras_multi_worker_fix()  # the suite applies it once per process, as users do
    assert tf_trainer.TensorFlowTrainer._maybe_symbolic_build.__module__ == _compat.__name__
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        x = keras.Input((1,), dtype="string")
        ids = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot")(x)
        model = keras.Model(x, keras.layers.Dense(1)(ids))
        model.compile(optimizer="sgd", loss="mse")
    # String features: Keras' own symbolic build averages the replicas' batches and fails here.
    data = tf.data.Dataset.from_tensor_slices((np.array([["a"], ["b"]] * 4, dtype=object), np.ones((8, 1)))).batch(4)
    history = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]), f"{VERSIONS}: the patched fit gave {history.history}"


# ------------------------------------------------------- checkpoint callbacks
def test_checkpoint_hooks_exist_with_the_overridden_signatures():
    save = inspect.signature(keras.callbacks.ModelCheckpoint._save_model).parameters
    assert list(save) == ["self", "epoch", "batch", "logs"], f"{VERSIONS}: ModelCheckpoint._save_model changed: {list(save)}"
    for hook in ("_save_model", "_load_model"):
        method = getattr(keras.callbacks.BackupAndRestore, hook, None)
        assert method is not None and list(inspect.signature(method).parameters) == ["self"], (
            f"{VERSIONS}: BackupAndRestore.{hook}() changed or is gone."
        )


@pytest.mark.slow
def test_backup_state_and_resume_epoch(tmp_path):
    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    path = _compat.backup_metadata_path(backup)
    assert pathlib.Path(path).parent == tmp_path and path.endswith(".json"), (
        f"{VERSIONS}: BackupAndRestore._training_metadata_path changed: {path!r}"
    )
    assert _compat.backup_position(backup) == (0, 0), f"{VERSIONS}: BackupAndRestore's position state changed."

    model = _dense_model()
    model.compile(optimizer="sgd", loss="mse")
    _compat.set_resume_epoch(model, 2)
    history = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=3, verbose=0)
    assert history.epoch == [2], f"{VERSIONS}: fit no longer starts at model._initial_epoch ({history.epoch})."


@pytest.mark.slow
def test_atomic_callbacks_write_through_the_hooks(tmp_path):
    model = _dense_model()
    model.compile(optimizer="sgd", loss="mse")
    checkpoint = mtl.callbacks.AtomicModelCheckpoint(str(tmp_path / "m.keras"))
    backup = mtl.callbacks.AtomicBackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, verbose=0, callbacks=[checkpoint, backup])
    assert (tmp_path / "m.keras").is_file(), f"{VERSIONS}: ModelCheckpoint no longer saves through _save_model."
    assert "save" not in model.__dict__, "the temporary save wrapper was left on the model"
    meta = json.loads(pathlib.Path(backup.metadata_path).read_text())
    # The epoch to resume at: two epochs done.
    assert meta["epoch"] == 2 and (tmp_path / "backup" / meta["weights"]).is_file(), (
        f"{VERSIONS}: BackupAndRestore no longer saves through _save_model: {meta}"
    )


def test_flatten_metrics_in_order_is_evaluates_list():
    model = _dense_model()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    x, y = np.ones((8, 2), "float32"), np.ones((8, 1), "float32")
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert _compat.flatten_metrics_in_order(model, logs) == model.evaluate(x, y, verbose=0), (
        f"{VERSIONS}: Keras' _flatten_metrics_in_order changed; MultiTaskModel.evaluate's list would differ."
    )


# ---------------------------------------------------------------- TensorBoard
def test_tensorboard_per_batch_flags(tmp_path):
    quiet = keras.callbacks.TensorBoard(str(tmp_path), write_graph=False, profile_batch=0)
    quiet.set_model(_dense_model())  # Keras decides about the graph here
    assert _compat.tensorboard_writes_per_batch(quiet) is False, (
        f"{VERSIONS}: TensorBoard's _should_write_train_graph/_should_trace flags are gone or renamed; "
        "LeanTensorBoard would silently lose its speed-up."
    )
    graph = keras.callbacks.TensorBoard(str(tmp_path), write_graph=True, profile_batch=0)
    graph.set_model(_dense_model())
    assert _compat.tensorboard_writes_per_batch(graph) is True
    assert _compat.tensorboard_profiles(graph) is False, f"{VERSIONS}: TensorBoard's _should_trace flag is gone or renamed."
    profiled = keras.callbacks.TensorBoard(str(tmp_path), profile_batch=(2, 3))
    profiled.set_model(_dense_model())
    assert _compat.tensorboard_profiles(profiled) is True


# ------------------------------------------------------------------- LazyAdam
def test_adam_slots_and_clip_by_norm():
    variable = keras.Variable(np.ones((3, 2)), dtype="float32")
    for amsgrad in (False, True):
        adam = keras.optimizers.Adam(amsgrad=amsgrad, clipnorm=1.0)
        adam.build([variable])
        m, v, v_hat = _compat.adam_slots(adam, variable)
        assert m.shape == v.shape == variable.shape, f"{VERSIONS}: Adam's slot lists changed."
        assert (v_hat is not None) == amsgrad
        adam.apply([tf.ones((3, 2))], [variable])
        assert not np.allclose(keras.ops.convert_to_numpy(m), 0.0), f"{VERSIONS}: Adam no longer updates `_momentums`."
    clipped = _compat.clip_by_norm(adam, tf.constant([3.0, 4.0]))
    np.testing.assert_allclose(clipped.numpy(), [0.6, 0.8], rtol=1e-6)

    class Recording(keras.optimizers.Adam):
        calls = 0

        def _clip_gradients(self, grads):
            type(self).calls += 1
            return super()._clip_gradients(grads)

    Recording(clipnorm=1.0).apply([tf.ones((3, 2))], [variable])
    assert Recording.calls == 1, f"{VERSIONS}: Optimizer.apply no longer calls the _clip_gradients hook LazyAdam overrides."


# -------------------------------------------------- learning-rate multipliers
def test_learning_rate_multipliers_scale_update_step_exactly_and_undo():
    a, b = (keras.Variable(np.ones(2), dtype="float32", name=n) for n in "ab")
    g = tf.constant([0.5, -2.0])
    calls = []
    sgd = keras.optimizers.SGD(0.1)
    _compat.set_learning_rate_multipliers(sgd, [(a, 0.3)])
    scaled_step = sgd.update_step

    def recording(gradient, variable, learning_rate):
        calls.append(sgd._var_key(variable))
        return scaled_step(gradient, variable, learning_rate)

    _compat.set_untracked(sgd, "update_step", recording)
    sgd.apply([g, g], [a, b])
    assert sorted(calls) == sorted([sgd._var_key(a), sgd._var_key(b)]), (
        f"{VERSIONS}: Optimizer.apply no longer calls the instance's update_step once per variable, "
        "with variables whose _var_key is the Keras variable's."
    )
    lr = np.float32(0.1)
    # SGD's step is variable - gradient * rate, in float32: bit for bit at rate 0.1 x 0.3.
    np.testing.assert_array_equal(a.numpy(), np.float32(1) - g.numpy() * (lr * np.float32(0.3)), err_msg=VERSIONS)
    np.testing.assert_array_equal(b.numpy(), np.float32(1) - g.numpy() * lr, err_msg=VERSIONS)
    _compat.set_learning_rate_multipliers(sgd, [])
    assert "update_step" not in vars(sgd)
    before = a.numpy()
    sgd.apply([g, g], [a, b])
    np.testing.assert_array_equal(a.numpy(), before - g.numpy() * lr)


def test_learning_rate_multipliers_decay_at_the_scaled_rate():
    a, b = (keras.Variable(np.ones(2), dtype="float32", name=n) for n in "ab")
    adamw = keras.optimizers.AdamW(0.1, weight_decay=0.5)
    assert type(adamw)._apply_weight_decay in _compat._keras_weight_decay_rules(), (
        f"{VERSIONS}: AdamW no longer uses Keras' own _apply_weight_decay."
    )
    _compat.set_learning_rate_multipliers(adamw, [(a, 0.2)])
    zero = tf.zeros(2)  # no gradient step (Adam's step of a zero gradient is 0): only the decay
    adamw.apply([zero, zero], [a, b])
    np.testing.assert_allclose(a.numpy(), 1 - 0.5 * 0.1 * 0.2, rtol=1e-6, err_msg=VERSIONS)
    np.testing.assert_allclose(b.numpy(), 1 - 0.5 * 0.1, rtol=1e-6, err_msg=VERSIONS)


# --------------------------------------------------------------- layer walks
def test_sublayers_and_created_trainable_see_nested_layers_and_frozen_kernels():
    from keras_mtl._heads import ScaledDense

    head = ScaledDense(1, name="r")
    head.build((None, 3))
    assert [layer.path for layer in _compat.sublayers(head)] == ["r/dense"], VERSIONS
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    assert _compat.sublayers(dense) == []
    assert _compat.created_trainable(head) == []  # its mean and std are statistics, its kernel the Dense's
    dense.trainable = False  # a frozen layer still created its kernel trainable: int8 quantizes it
    assert [v.name for v in _compat.created_trainable(dense)] == ["kernel", "bias"], VERSIONS


# ----------------------------------------------------------- one place only
_INTERNALS = re.compile(
    r"keras\.src|(?<!get)_compile_config|object\.__setattr__|tensorflow\.python|tf_trainer"
    # Keras-private attributes read or written by keras_mtl.
    r"|[.\"'](_keras_history|_inbound_nodes|_loss_tracker|_jit_compile|_distribute_strategy|_convert_input_args"
    r"|_initial_epoch|_training_metadata_path|_current_epoch|_last_batch_seen|_list_adaptable_preprocessors"
    r"|_is_adapted|_sublayers_built|_call_has_training_arg|_should_write_train_graph|_should_trace"
    r"|_get_variable_index|_momentums|_velocities|_velocity_hats|_clip_by_norm|_flatten_layers"
    r"|_trainable_variables|_var_key|_apply_weight_decay|_use_weight_decay|_keras_logits)\b"
)


def test_wrap_call_runs_in_place_of_one_layers_call_eagerly_symbolically_and_traced():
    dense = keras.layers.Dense(2, kernel_initializer="ones", name="wrapped")
    other = keras.layers.Dense(2, kernel_initializer="ones")
    x = keras.Input((3,))
    model = keras.Model(x, [dense(x), other(x)])
    _compat.wrap_call(dense, lambda call: lambda inputs, *a, **k: call(inputs, *a, **k) + 10.0)
    ones = np.ones((1, 3), "float32")
    eager = model(ones)
    traced = tf.function(model)(ones)
    for got in (eager, traced):
        np.testing.assert_allclose(got[0], [[13.0, 13.0]])  # this layer: wrapped
        np.testing.assert_allclose(got[1], [[3.0, 3.0]])  # another of the same class: not
    assert type(dense) is keras.layers.Dense and dense.get_config()["name"] == "wrapped"
    assert dense.compute_output_spec(keras.KerasTensor((None, 3))).shape == (None, 2)


# ------------------------------------------------ SavedModel variables, once
def _stored_values(path) -> int:
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    shapes = reader.get_variable_to_shape_map()
    return sum(int(np.prod(shape)) for key, shape in shapes.items() if key.endswith("VARIABLE_VALUE"))


def test_an_archive_tracking_tf_variables_stores_each_weight_once(tmp_path):
    model = _dense_model(inputs=30)
    x = np.random.default_rng(0).normal(size=(4, 30)).astype("float32")
    counts = {}
    for once in (False, True):
        archive = keras.export.ExportArchive()
        archive.track(model)
        if once:
            _compat.track_variables_once(archive)
        archive.add_endpoint("serve", model.call, input_signature=[tf.TensorSpec((None, 30), tf.float32)])
        archive.write_out(str(tmp_path / str(once)), verbose=False)
        counts[once] = _stored_values(tmp_path / str(once))
        loaded = tf.saved_model.load(str(tmp_path / str(once)))
        np.testing.assert_allclose(loaded.serve(x).numpy(), model.predict(x, verbose=0), rtol=1e-6)
        assert len(loaded.variables) == len(model.weights)
    assert counts[True] == model.count_params() == 31, f"{VERSIONS}: {counts}"
    # When this fails, Keras stores each weight once by itself (keras-team/keras#23553
    # fixed): track_variables_once can go.
    assert counts[False] == 2 * model.count_params(), f"{VERSIONS}: {counts}"


def test_expanded_sigmoid_output_keeps_the_logits_keras_losses_read():
    logits = tf.constant([[40.0], [-3.0]])
    output = keras.activations.sigmoid(logits)
    labels = tf.constant([[[0.0]], [[1.0]]])
    from_logits = keras.losses.binary_crossentropy(labels, _compat.expand_keeping_logits(output)).numpy().ravel()
    # softplus(40) and softplus(3): the loss of the logits, not of probabilities clipped at 1 - 1e-7.
    np.testing.assert_allclose(from_logits, [40.0, np.log1p(np.exp(3.0))], rtol=1e-5, err_msg=VERSIONS)
    clipped = keras.losses.binary_crossentropy(labels, tf.expand_dims(output, -1)).numpy().ravel()
    assert clipped[0] < 17, f"{VERSIONS}: a reshaped output no longer loses Keras' logits ({clipped})"
    assert _compat.expand_keeping_logits(tf.constant([0.5])).shape == (1, 1)


def test_internals_are_used_only_in_the_compat_module():
    hits = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _INTERNALS.search(line)
    ]
    assert not hits, "Keras/TF internals outside keras_mtl/_compat.py:\n" + "\n".join(hits)
