"""The in-step record of non-finite weights behind StopOnNonFiniteLoss: the error names the step that
wrote the NaN, under XLA, MirroredStrategy and steps_per_execution; never saved; no change to training."""

import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import callbacks, _finite as finite, tasks

BAD_LABEL = 7.0


def spiky_error(y, p):
    """Finite everywhere; its gradient is NaN only on rows labelled BAD_LABEL (sqrt's slope at 0)."""
    return tf.reduce_mean(tf.sqrt(tf.abs(y - p) * 0.0 + tf.cast(tf.not_equal(y, BAD_LABEL), p.dtype)), axis=-1)


def build(**compile_kwargs):
    model = mtl.models.shared_bottom(
        keras.Input((4,), name="x"),
        # The spiky loss reads raw label values (BAD_LABEL), not z-scores.
        [tasks.Regression("smooth"), tasks.Regression("spiky", loss=spiky_error, normalize=False)],
        trunk=mtl.trunks.mlp([4]),
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), **compile_kwargs)
    return model


def data(rng, bad_row=None, n=64):
    x = rng.normal(size=(n, 4)).astype("float32")
    y = {"smooth": x[:, 0], "spiky": x[:, 1].copy()}
    if bad_row is not None:
        y["spiky"][bad_row] = BAD_LABEL
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def mirrored():
    # Reducing through one device launches no collectives, which would clash
    # with other MirroredStrategy tests in this process (see test_architectures).
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())


SETUPS = {
    "default": (None, {}),
    "steps_per_execution": (None, {"steps_per_execution": 2}),
    "xla": (None, {"jit_compile": True}),
    "gradient_method": (None, {"weighting": "pcgrad"}),
    "mirrored": (mirrored, {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("setup", list(SETUPS))
def test_nan_weights_are_caught_after_the_step_that_wrote_them(rng, setup):
    strategy, compile_kwargs = SETUPS[setup]
    with (strategy() if strategy else tf.distribute.get_strategy()).scope():
        model = build(**compile_kwargs)
    cb = callbacks.StopOnNonFiniteLoss()
    # Row 20 is in batch 2: with steps_per_execution=2 the NaN is written by the
    # last step of the first execution, whose logged losses are still finite.
    with pytest.raises(
        FloatingPointError,
        match=r"epoch 1, step 2: every loss was finite but the gradients of task\(s\) \['spiky'\] were non-finite",
    ):
        model.fit(data(rng, bad_row=20), epochs=1, verbose=0, callbacks=[cb])
    assert model.stop_training
    assert model.jit_compile is (setup == "xla")
    # The step recorded the flag: the callback never built its own reduction over the weights.
    assert finite.recorded(model) and finite.all_finite(model) is False
    assert cb._all_finite is None


@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
def test_the_flag_does_not_change_training_and_costs_nothing_unasked(rng, jit):
    weights = []
    for cbs in ([], [callbacks.StopOnNonFiniteLoss(check_weights=False)], [callbacks.StopOnNonFiniteLoss()]):
        keras.utils.set_random_seed(3)
        model = build(jit_compile=jit)
        model.fit(data(np.random.default_rng(0)), epochs=2, verbose=0, callbacks=cbs)
        assert model.jit_compile is jit
        # Only a callback that checks weights turns the flag on; other models record nothing.
        assert finite.recorded(model) == bool(cbs and cbs[0].check_weights)
        weights.append(model.get_weights())
    assert finite.all_finite(model) is True
    for other in weights[1:]:
        for a, b in zip(weights[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_a_model_trained_before_records_the_flag_once_given_the_callback(rng):
    model = build()
    model.fit(data(rng), epochs=1, verbose=0)
    assert model.train_function is not None and not finite.recorded(model)
    cb = callbacks.StopOnNonFiniteLoss()
    # Its train function, traced without the flag, is replaced by one that records it.
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 2: every loss was finite but the gradients of task\(s\) \['spiky'\]"):
        model.fit(data(rng, bad_row=20), epochs=1, verbose=0, callbacks=[cb])
    assert finite.recorded(model) and cb._all_finite is None


@pytest.mark.slow
def test_a_sum_overflow_is_confirmed_with_the_exact_check_before_raising(rng, monkeypatch):
    model = build()
    kernel = model.trainable_variables[0]  # the trunk's first kernel, (4, 4)
    assert tuple(kernel.shape) == (4, 4)
    big = kernel.numpy()
    big[0, :] = 1e38  # finite, but the four sum to inf in float32
    kernel.assign(big)
    x = rng.normal(size=(32, 4)).astype("float32")
    x[:, 0] = 0.0  # those weights then neither reach the outputs nor get a gradient
    ds = tf.data.Dataset.from_tensor_slices((x, {"smooth": x[:, 1], "spiky": x[:, 2]})).batch(16)
    records, clear = [], finite.clear
    # Each exact check that finds the weights finite clears the record: a false alarm.
    monkeypatch.setattr(finite, "clear", lambda m: records.append(finite.first_nonfinite(m)) or clear(m))
    model.fit(ds, epochs=1, verbose=0, callbacks=[callbacks.StopOnNonFiniteLoss()])
    assert records[0] is None  # fit starts with a clean record...
    assert records[1] == (1, ["trunk_dense_0"])  # ...the overflowing sum was recorded at step 1...
    assert all(np.isfinite(w).all() for w in model.get_weights())  # ...and the exact check cleared it
    assert finite.all_finite(model) is True
    assert not model.stop_training


@pytest.mark.slow
def test_the_record_is_read_at_epoch_ends_and_non_finite_losses_only(rng, monkeypatch):
    model = build()
    reads, first_nonfinite = [], finite.first_nonfinite
    monkeypatch.setattr(finite, "first_nonfinite", lambda m: reads.append(1) or first_nonfinite(m))
    model.fit(data(rng), epochs=2, verbose=0, callbacks=[callbacks.StopOnNonFiniteLoss()])  # 4 steps an epoch
    assert finite.recorded(model) and len(reads) == 2  # not once a step: each read waits for the step


@pytest.mark.slow
def test_nan_written_by_the_last_step_of_an_epoch_is_caught_at_its_end(rng):
    model = build()
    # Row 60 is in batch 4, the epoch's last: no later step shows a NaN loss.
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 4: every loss was finite but the gradients of task\(s\) \['spiky'\]"):
        model.fit(data(rng, bad_row=60), epochs=2, verbose=0, callbacks=[callbacks.StopOnNonFiniteLoss()])
    assert model.stop_training


@pytest.mark.slow
def test_a_second_fit_reports_its_own_steps(rng):
    model = build()
    cb = callbacks.StopOnNonFiniteLoss()
    model.fit(data(rng), epochs=1, verbose=0, callbacks=[cb])  # 4 clean steps: the optimizer counts on
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 2: every loss was finite but the gradients of task\(s\) \['spiky'\]"):
        model.fit(data(rng, bad_row=20), epochs=1, verbose=0, callbacks=[cb])


@pytest.mark.slow
def test_the_flag_is_never_saved(rng, tmp_path):
    model = build()
    fresh_weights = len(model.weights)
    model.fit(data(rng), epochs=1, verbose=0, callbacks=[callbacks.StopOnNonFiniteLoss()])
    assert finite.recorded(model)
    assert len(model.weights) == fresh_weights

    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert not any(b"weights_finite" in z.read(name) for name in z.namelist())
    assert len(keras.saving.load_model(tmp_path / "m.keras", custom_objects={"spiky_error": spiky_error}).weights) == fresh_weights

    unflagged = build()
    unflagged.fit(data(rng), epochs=1, verbose=0)
    assert not finite.recorded(unflagged)
    names = [
        [name for name, _ in tf.train.list_variables(tf.train.Checkpoint(model=m).write(str(tmp_path / tag / "c")))]
        for m, tag in ((model, "flagged"), (unflagged, "unflagged"))
    ]
    assert names[0] == names[1]

    path = mtl.export.export_saved_model(model, tmp_path / "export")
    with open(f"{path}/saved_model.pb", "rb") as f:
        assert b"weights_finite" not in f.read()


@pytest.mark.slow
def test_plain_keras_models_keep_the_separate_weight_check(rng):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(keras.layers.Dense(4, name="hidden")(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=spiky_error)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = x[:, :1].copy()
    y[20] = BAD_LABEL
    cb = callbacks.StopOnNonFiniteLoss()
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 2: every loss was finite but the gradients of the shared layers"):
        model.fit(x, y, batch_size=16, shuffle=False, verbose=0, callbacks=[cb])
    assert not finite.recorded(model) and cb._all_finite is not None


def _record_ops(model) -> list[str]:
    finite.enable(model)
    return [op.type for op in tf.function(lambda: finite.record(model)).get_concrete_function().graph.get_operations()]


def test_the_record_costs_one_sum_per_variable_however_many_layers_hold_none():
    # Ops per layer made XLA compile the census step 0.15 s longer (116 layers,
    # most of them weightless preprocessing); the graph must not grow with them.
    def model(extra_layers):
        def trunk(h):
            for i in range(extra_layers):
                h = keras.layers.Activation("linear", name=f"pass_{i}")(h)
            return mtl.trunks.mlp([4])(h)

        m = mtl.models.shared_bottom(keras.Input((4,), name="x"), [tasks.Regression("a")], trunk=trunk)
        m.compile(optimizer="sgd")
        return m

    few, many = model(0), model(30)
    assert len(many.layers) >= len(few.layers) + 30
    ops_few, ops_many = _record_ops(few), _record_ops(many)
    assert ops_few == ops_many
    assert ops_many.count("Sum") == len(many.trainable_variables) == 4


@pytest.mark.slow
def test_a_weight_no_layer_holds_is_recorded_and_named_by_its_path():
    # Uncertainty's log-variances belong to the weighting method, not to a layer of the model.
    model = build(weighting="uncertainty")
    cb = callbacks.StopOnNonFiniteLoss()
    cb.set_model(model)
    model.fit(data(np.random.default_rng(0)).take(1), verbose=0)  # step 1, all finite
    assert finite.first_nonfinite(model) is None
    (log_variance,) = [v for v in model.trainable_variables if "log_variance" in v.path]
    log_variance.assign(np.full(log_variance.shape, np.nan, "float32"))
    finite.record(model)  # as the next step's record would, with optimizer.iterations at 1
    assert finite.first_nonfinite(model) == (1, [])
    with pytest.raises(FloatingPointError, match=r"weighting method's\) became non-finite; .* after the update: \['.*log_variance'\]"):
        cb.check_model_weights(epoch=0, step=2)


@pytest.mark.slow
def test_tables_too_large_to_sum_every_step_are_checked_at_epoch_end(rng, monkeypatch):
    from keras_mtl import _finite as finite
    from keras_mtl.callbacks import StopOnNonFiniteLoss

    # A 40 x 8 embedding table counts as "large" here, so the step leaves it out.
    monkeypatch.setattr(finite, "RECORD_MAX_SIZE", 100)
    ids = keras.Input((1,), dtype="int32", name="ids")
    emb = keras.layers.Embedding(40, 8, name="table")(ids)
    model = mtl.models.shared_bottom({"ids": ids}, [mtl.tasks.Binary("a")],
                                     trunk=lambda x: keras.layers.Flatten()(emb))
    model.compile(optimizer="sgd")
    x = {"ids": rng.integers(0, 40, (64, 1)).astype("int32")}
    y = {"a": rng.integers(0, 2, 64).astype("float32")}
    finite.enable(model)
    model.fit(x, y, epochs=1, verbose=0)
    table = model.get_layer("table").embeddings
    table.assign(tf.where(tf.range(40)[:, None] == 39, np.nan, table))  # a row no batch reads
    finite.record(model)
    assert finite.all_finite(model) and not finite.unrecorded_finite(model)
    guard = StopOnNonFiniteLoss()
    guard.set_model(model)
    guard.on_train_begin()
    with pytest.raises(FloatingPointError, match=r"layers with non-finite weights after the update: \['table'\]"):
        guard.on_epoch_end(0)
