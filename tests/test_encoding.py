"""Preprocessing as a stage of its own: encode once, train on the encoded step, XLA by default there."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import _encoding as encoding


def tabular_model(data, units=(16,), **kwargs):
    return mtl.models.shared_bottom(
        data.inputs, list(data.tasks), trunk=mtl.trunks.tabular(data.feature_space, list(units)), **kwargs
    )


def first_batch(ds):
    return next(iter(ds))


def test_split_cuts_after_feature_space_and_halves_compose(census_small):
    model = tabular_model(census_small)
    split = model.preprocessing
    assert split is not None and len(split.names) == 1
    x, _ = first_batch(census_small.test)
    encoded = split.encoder(x)
    (name,) = split.names
    # The encoder is exactly FeatureSpace's encoding, and the core on top of
    # it is exactly the raw model.
    np.testing.assert_allclose(encoded[name], census_small.feature_space(x), atol=1e-6)
    raw_out, core_out = model(x), model(encoded)
    for task in raw_out:
        np.testing.assert_allclose(raw_out[task], core_out[task], atol=1e-6)


def test_no_split_without_string_inputs():
    model = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.Binary("a")], trunk=mtl.trunks.mlp([4]))
    assert model.preprocessing is None
    data = mtl.data.MultiTaskData("d", None, [], None, None, None, batch_size=2)
    assert data.encoded(model) is data


def test_dropout_and_learned_layers_stay_out_of_the_front():
    raw = keras.Input((1,), dtype="string", name="c")
    lookup = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot", name="lookup")
    scaled = keras.layers.Rescaling(2.0, name="scaled")(lookup(raw))
    dropped = keras.layers.Dropout(0.5, name="drop")(scaled)
    model = mtl.models.shared_bottom(
        {"c": raw}, [mtl.tasks.Binary("y")], trunk=lambda x: keras.layers.Dense(3, name="d")(dropped)
    )
    # Rescaling is weightless preprocessing; Dropout behaves differently in training.
    assert model.preprocessing.names == ("scaled",)


def test_text_model_encodes_tokens_once():
    data = mtl.data.trump_tweets(limit=300, batch_size=64)
    model = mtl.models.shared_bottom(data.inputs, list(data.tasks), trunk=mtl.trunks.text(data.vectorizer, units=8))
    split = model.preprocessing
    x, _ = first_batch(data.test)
    (name,) = split.names
    np.testing.assert_array_equal(split.encoder(x)[name], data.vectorizer(x["text"]))
    fast = data.encoded(model)
    assert fast.train.element_spec[0][name].dtype == tf.int64
    # Raw columns stay raw: export warmup and verification read them.
    assert fast.sample(2)["text"].dtype.kind in "OUS"


def _weights_after_fit(model, ds, **compile_kwargs):
    model.compile(optimizer=keras.optimizers.SGD(0.1), **compile_kwargs)
    model.fit(ds, epochs=2, verbose=0)
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.slow
@pytest.mark.parametrize("weighting", ["fixed", {"name": "pcgrad", "mode": "representation"}], ids=str)
def test_training_on_encoded_features_equals_training_on_raw(census_small, weighting):
    def method():  # one object per model: a method holds per-model state
        return mtl.weighting.get(weighting["name"], mode=weighting["mode"]) if isinstance(weighting, dict) else weighting

    fast_data = census_small.encoded(tabular_model(census_small))
    keras.utils.set_random_seed(0)
    raw_model = tabular_model(census_small)
    keras.utils.set_random_seed(0)
    enc_model = tabular_model(census_small)
    raw = _weights_after_fit(raw_model, census_small.train, weighting=method(), jit_compile=False)
    enc = _weights_after_fit(enc_model, fast_data.train, weighting=method(), jit_compile=False)
    for a, b in zip(raw, enc):
        np.testing.assert_allclose(a, b, atol=1e-5)
    raw_eval = raw_model.evaluate(census_small.test, verbose=0, return_dict=True)
    enc_eval = enc_model.evaluate(fast_data.test, verbose=0, return_dict=True)
    for key in raw_eval:
        assert raw_eval[key] == pytest.approx(enc_eval[key], abs=1e-4), key


@pytest.mark.slow
def test_auto_jit_compiles_the_encoded_step_only(census_small):
    model = tabular_model(census_small)
    fast = census_small.encoded(model)
    model.compile(optimizer="adam")
    model.fit(fast.train.take(2), validation_data=fast.validation.take(1), verbose=0)
    assert model.jit_compile is True
    # Raw string features cannot be XLA-compiled: the same model switches back.
    model.evaluate(census_small.test.take(1), verbose=0)
    assert model.jit_compile is False
    model.compile(optimizer="adam", jit_compile=False)
    model.fit(fast.train.take(1), verbose=0)
    assert model.jit_compile is False
    with pytest.raises(ValueError, match="jit_compile must be 'auto', True or False"):
        model.compile(optimizer="adam", jit_compile="yes")


@pytest.mark.slow
def test_auto_jit_stays_off_on_cpu_for_a_model_with_dropout(census_small):
    # Under XLA on CPU, Dropout's random numbers (TensorFlow's default stateless
    # generator) cost many times the whole step without XLA (benchmarks/RESULTS.md).
    model = mtl.models.shared_bottom(
        census_small.inputs, list(census_small.tasks), trunk=mtl.trunks.tabular(census_small.feature_space, [16], dropout=0.2)
    )
    fast = census_small.encoded(model)
    model.compile(optimizer="adam")
    model.fit(fast.train.take(2), verbose=0)
    assert model.jit_compile is False
    model.compile(optimizer="adam", jit_compile=True)  # asked for: kept
    model.fit(fast.train.take(2), verbose=0)
    assert model.jit_compile is True


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["parameters", "representation"])
def test_auto_jit_compiles_gradient_methods_on_encoded_features(census_small, mode):
    model = tabular_model(census_small)
    model.compile(optimizer="adam", weighting=mtl.weighting.PCGrad(mode=mode))
    history = model.fit(census_small.encoded(model).train.take(2), verbose=0)
    assert model.jit_compile is True
    assert np.isfinite(history.history["loss"][-1])


@pytest.mark.slow
def test_auto_jit_stays_off_under_a_strategy(census_small):
    # Reducing through one device launches no collectives, which would clash
    # with other MirroredStrategy tests in this process (see test_architectures).
    two = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with two.scope():
        model = tabular_model(census_small)
        model.compile(optimizer="adam")
    fast = census_small.encoded(model)
    model.fit(fast.train.take(2), verbose=0)
    assert model.jit_compile is False


@pytest.mark.slow
def test_model_trained_on_encoded_features_saves_and_serves_raw(census_small, tmp_path):
    model = tabular_model(census_small)
    fast = census_small.encoded(model)
    model.compile(optimizer="adam")
    model.fit(fast.train, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    x, _ = first_batch(census_small.test)
    for task, value in model.predict(x, verbose=0).items():
        np.testing.assert_allclose(again.predict(x, verbose=0)[task], value, atol=1e-6)
    # The reloaded model finds the same cut and takes encoded batches too.
    assert again.preprocessing.names == model.preprocessing.names
    again.evaluate(fast.test, verbose=0)


def test_encode_columns_names_a_missing_input():
    x = keras.Input((1,), name="x")
    enc = keras.Model({"x": x}, {"y": keras.layers.Rescaling(2.0)(x)})
    with pytest.raises(ValueError, match=r"no column for model input\(s\) \['x'\]"):
        encoding.encode_columns(enc, {"z": np.ones((2, 1))})


def test_encode_columns_traces_once_for_every_split_and_chunk():
    x = keras.Input((1,), name="x")
    enc = keras.Model({"x": x}, {"y": keras.layers.Rescaling(2.0)(x)})
    # float64 and int columns are cast to the input's float32, as Keras feeds a model.
    for column, chunk in ((np.arange(7.0)[:, None], 3), (np.arange(5)[:, None], 2), (np.ones((2, 1)), 4)):
        out = encoding.encode_columns(enc, {"x": column}, batch_size=chunk)["y"]
        np.testing.assert_array_equal(out, 2.0 * column)
        assert out.dtype == np.float32
    # 3 splits x 2 chunk sizes, one trace: a trace of census-income's lookups took ~0.2 s.
    assert encoding._traced_encoder(enc).experimental_get_tracing_count() == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "weighting",
    [name for name in mtl.weighting.available()]
    + [mtl.weighting.PCGrad(mode="representation"), mtl.weighting.CAGrad(mode="representation")],
    ids=str,
)
def test_every_weighting_method_compiles_under_xla(weighting, rng):
    x = rng.normal(size=(64, 6)).astype("float32")
    y = {"a": (x[:, 0] > 0).astype("float32"), "b": x[:, 1:2]}
    model = mtl.models.shared_bottom(
        keras.Input((6,)), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")], trunk=mtl.trunks.mlp([8])
    )
    model.compile(optimizer="adam", weighting=weighting, jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert model.jit_compile is True
    assert np.isfinite(history.history["loss"][-1])
