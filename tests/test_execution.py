"""`steps_per_execution="auto"`: 32 steps per call of the compiled step unless a callback counts batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import _execution, callbacks, tasks


def data(rng, n=1000):
    x = rng.normal(size=(n, 4)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1] - x[:, 2]}
    y["a"][::7] = -1  # missing labels keep their masking under a while loop
    return x, y


def model(**compile_kwargs):
    keras.utils.set_random_seed(0)
    m = mtl.models.shared_bottom(keras.Input((4,)), [tasks.Binary("a"), tasks.Regression("b")], trunk=mtl.trunks.mlp([8]))
    m.compile(optimizer=keras.optimizers.Adam(1e-2), **compile_kwargs)
    return m


def test_auto_trains_exactly_as_one_step_per_execution(rng):
    x, y = data(rng)
    auto, one = model(), model(steps_per_execution=1)
    # 1000 rows in batches of 16: 63 steps an epoch, the last execution cut short by the data.
    h_auto = auto.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x[:100], {k: v[:100] for k, v in y.items()}))
    h_one = one.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x[:100], {k: v[:100] for k, v in y.items()}))
    assert auto.steps_per_execution == _execution.AUTO_STEPS == 32 and one.steps_per_execution == 1
    assert int(auto.optimizer.iterations) == int(one.optimizer.iterations) == 126
    for a, b in zip(auto.get_weights(), one.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for key in h_one.history:
        np.testing.assert_allclose(h_auto.history[key], h_one.history[key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(auto.predict(x, batch_size=16, verbose=0)["a"], one.predict(x, batch_size=16, verbose=0)["a"], rtol=1e-6)
    assert auto.evaluate(x, y, batch_size=16, verbose=0, return_dict=True) == pytest.approx(
        one.evaluate(x, y, batch_size=16, verbose=0, return_dict=True), rel=1e-6
    )


def test_a_given_step_count_is_divided_exactly(rng):
    x, y = data(rng)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    m = model()
    m.fit(ds, epochs=2, steps_per_epoch=10, verbose=0)
    # Keras runs whole executions: 32 steps per execution would train 32 steps an epoch.
    assert m.steps_per_execution == 10 and int(m.optimizer.iterations) == 20
    m.fit(ds, epochs=1, steps_per_epoch=12, validation_data=ds, validation_steps=8, verbose=0)
    assert m.steps_per_execution == 4 and int(m.optimizer.iterations) == 32
    m.evaluate(ds, steps=7, verbose=0)
    assert m.steps_per_execution == 7


def test_callbacks_that_count_batches_get_one_step_per_execution(tmp_path):
    on_batch = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None)

    class Counter(keras.callbacks.Callback):  # counts batches through an overridden hook
        seen = 0

        def on_train_batch_begin(self, batch, logs=None):
            self.seen += 1

    per_epoch = [
        keras.callbacks.EarlyStopping(), keras.callbacks.History(), keras.callbacks.ProgbarLogger(),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "m.keras")), keras.callbacks.TensorBoard(str(tmp_path)),
        keras.callbacks.BackupAndRestore(str(tmp_path / "b")), keras.callbacks.LambdaCallback(on_epoch_end=print),
    ]
    # The non-finite checks read every step's losses: at 32 steps per call they would see
    # only the last one, when a NaN of one task has reached every task.
    per_batch = [
        callbacks.StopOnNonFiniteLoss(), keras.callbacks.TerminateOnNaN(),
        on_batch, Counter(), keras.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_freq=5),
        keras.callbacks.TensorBoard(str(tmp_path), update_freq=10), keras.callbacks.TensorBoard(str(tmp_path), profile_batch=2),
        keras.callbacks.TensorBoard(str(tmp_path), write_steps_per_second=True),
    ]
    assert _execution.auto_steps(per_epoch, [None], ["train", "test"]) == 32
    for cb in per_batch:
        assert _execution.auto_steps(per_epoch + [cb], [None], ["train", "test"]) == 1, cb
    # Only the hooks of the call that runs count.
    test_only = keras.callbacks.LambdaCallback(on_test_batch_end=lambda batch, logs: None)
    assert _execution.auto_steps([test_only], [None], ["train"]) == 32
    assert _execution.auto_steps([test_only], [None], ["train", "test"]) == 1


def test_a_callback_counting_batches_sees_every_step(rng):
    x, y = data(rng, 160)
    seen = []
    m = model()
    m.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))])
    assert seen == list(range(10)) and m.steps_per_execution == 1
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert m.steps_per_execution == 32  # the next call without it runs 32 again


def test_given_steps_per_execution_is_used_and_bad_values_are_refused(rng):
    x, y = data(rng, 160)
    m = model(steps_per_execution=3)
    m.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None)])
    assert m.steps_per_execution == 3
    for bad in (0, -2, "fast", True, 2.0):
        with pytest.raises(ValueError, match=r"steps_per_execution must be 'auto' or an integer >= 1; got"):
            model(steps_per_execution=bad)


def test_eager_runs_one_step_per_call(rng):
    x, y = data(rng, 64)
    m = model(run_eagerly=True)
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert m.steps_per_execution == 1 and int(m.optimizer.iterations) == 4


def test_saved_model_keeps_auto_requests(tmp_path, rng):
    x, y = data(rng, 64)
    m = model()
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    config = m.get_compile_config()
    assert config["steps_per_execution"] == "auto" and config["jit_compile"] == "auto"
    m.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert loaded.steps_per_execution == 32
    fixed = model(steps_per_execution=4, jit_compile=False)
    fixed.save(tmp_path / "f.keras")
    assert keras.saving.load_model(tmp_path / "f.keras").get_compile_config()["steps_per_execution"] == 4
