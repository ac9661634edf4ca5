"""PerTaskEarlyStopping: a task stops (own layers restored and frozen, loss untrained) while others go on."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.callbacks import PerTaskEarlyStopping
from keras_mtl.tasks import Binary, Regression


def _model():
    keras.utils.set_random_seed(0)
    model = mtl.models.shared_bottom(
        keras.Input((4,), name="x"), [Binary("a", tower=[3]), Regression("b", normalize=False)],
        trunk=mtl.trunks.mlp([6]),
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    return model


def _data(rng, n=64):
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1] * 2}


def _fill(model, value):
    model.set_weights([np.full_like(w, value) for w in model.get_weights()])


def test_scripted_history_stops_restores_and_freezes_the_task(rng):
    model = _model()
    stopping = PerTaskEarlyStopping(patience=2, min_delta=0.01)
    stopping.set_model(model)
    stopping.on_train_begin()
    # a: best at epoch 1 (0.50), then 0.495 (not better by 0.01) and 0.6: stops after epoch 3.
    history = {0: (0.7, 1.0), 1: (0.5, 0.9), 2: (0.495, 0.8), 3: (0.6, 0.7), 4: (0.6, 0.695), 5: (0.6, 0.693)}
    for epoch, (a, b) in history.items():
        _fill(model, float(epoch))
        stopping.on_epoch_end(epoch, {"val_a_loss": a, "val_b_loss": b, "loss": 1.0})
        if epoch == 3:
            assert stopping.stopped_epochs == {"a": 3}
            # a's own layers (tower, head) hold epoch 1's weights and are frozen; shared ones are not.
            for name in ("a_tower_0", "a"):
                layer = model.get_layer(name)
                assert not layer.trainable and all(np.all(w == 1.0) for w in layer.get_weights()), name
            assert model.get_layer("trunk_dense_0").trainable and model.get_layer("b").trainable
            assert model._stopped_tasks == {"a"} and not model.stop_training
    # b improves by less than 0.01 at epochs 4 and 5: stops after epoch 5, and then fit stops.
    assert stopping.stopped_epochs == {"a": 3, "b": 5}
    assert stopping.best_values == {"a": 0.5, "b": 0.7}
    assert model.stop_training
    np.testing.assert_array_equal(model.get_layer("b").get_weights()[0], 3.0)  # b's best epoch
    stopping.on_train_end()
    assert all(layer.trainable for layer in model.layers) and not model._stopped_tasks


def test_a_stopped_task_sends_no_gradient_to_the_shared_layers(rng):
    model = _model()
    x, y = _data(rng)
    shared = model.get_layer("trunk_dense_0").trainable_variables

    def grads(stopped, labels):
        model.__dict__["_stopped_tasks"] = frozenset(stopped)
        with tf.GradientTape() as tape:
            losses, _ = model.task_losses(labels, model(x, training=True), training=True)
            total = tf.add_n(list(losses.values()))
        return losses, tape.gradient(total, shared)

    losses, stopped = grads({"a"}, y)
    _, b_only = grads(set(), {"a": np.full(64, -1.0, "float32"), "b": y["b"]})  # a without labels: no loss
    assert float(losses["a"]) > 0  # still computed, for the logs
    for g, want in zip(stopped, b_only):
        np.testing.assert_allclose(g.numpy(), want.numpy(), rtol=1e-6, atol=1e-8)


def test_in_fit_the_stopped_task_keeps_its_best_weights_while_the_other_trains(rng):
    model = _model()
    x, y = _data(rng)
    heads = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            heads[epoch] = ([w.copy() for w in model.get_layer("a").get_weights()],
                            model.get_layer("trunk_dense_0").get_weights()[0].copy(), logs["a_loss"])

    # "max" on a falling training loss: a never improves after epoch 0, so it stops after epoch 1.
    stopping = PerTaskEarlyStopping(monitor={"a": "a_loss", "b": "b_loss"}, mode={"a": "max"}, patience=1)
    history = model.fit(x, y, epochs=4, batch_size=16, callbacks=[stopping, Record()], verbose=0).history
    assert stopping.stopped_epochs == {"a": 1} and len(history["loss"]) == 4
    for epoch in (1, 2, 3):  # restored to epoch 0's weights and left there
        for w, w0 in zip(heads[epoch][0], heads[0][0]):
            np.testing.assert_array_equal(w, w0)
    assert np.abs(heads[3][1] - heads[1][1]).max() > 1e-4  # the trunk trains on for b
    assert np.isfinite(heads[3][2])  # a's loss is still logged
    assert all(layer.trainable for layer in model.layers)


def test_gradient_methods_and_bad_arguments_are_refused(rng):
    model = _model()
    x, y = _data(rng, 16)
    model.compile(optimizer="sgd", weighting="pcgrad")
    with pytest.raises(ValueError, match="PCGrad combines task gradients|combines task gradients"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[PerTaskEarlyStopping()])
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        PerTaskEarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta must be a finite number >= 0"):
        PerTaskEarlyStopping(min_delta=-1)
    with pytest.raises(ValueError, match=r"monitor names \['c'\], not task\(s\)"):
        PerTaskEarlyStopping(monitor={"c": "val_c_loss"}).set_model(_model())
    stopping = PerTaskEarlyStopping()
    stopping.set_model(_model())
    with pytest.raises(ValueError, match=r"epoch 0's logs have no \['val_b_loss'\]"):
        stopping.on_epoch_end(0, {"val_a_loss": 1.0, "val_loss": 1.0})
