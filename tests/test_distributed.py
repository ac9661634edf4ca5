"""Two logical CPU devices under MirroredStrategy train exactly like one device."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import tasks

GLOBAL_BATCH = 16
_STRATEGIES = {}


def strategies():
    """One OneDevice and one Mirrored strategy for the whole session: strategies
    created one after another in a process can hand out clashing collective keys."""
    if not _STRATEGIES:
        _STRATEGIES["one"] = tf.distribute.OneDeviceStrategy("/cpu:0")
        _STRATEGIES["two"] = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return _STRATEGIES["one"], _STRATEGIES["two"]


def uneven_data(rng, n=48):
    """Labels unevenly spread: within each global batch the first half (replica 0)
    has far fewer labels for task `a` than the second half (replica 1)."""
    x = rng.normal(size=(n, 5)).astype("float32")
    a = (x[:, 0] + 0.3 * x[:, 1] > 0).astype("float32")
    b = (x[:, 2] * 2 + x[:, 3]).astype("float32")
    c = np.clip((x[:, 4] + 1.5).astype("int64"), 0, 2)
    position = np.arange(n) % GLOBAL_BATCH
    a[(position < 8) & (position % 4 != 0)] = -1  # replica 0: 2 of 8 labelled
    b[position >= 12] = np.nan  # replica 1: 4 of 8 labelled
    c[position % 3 == 0] = -1
    return x, {"a": a, "b": b, "c": c}


def build(weights=(1.5, 0.5, 1.0)):
    return mtl.models.shared_bottom(
        keras.Input((5,)),
        [
            tasks.Binary("a", weight=weights[0]),
            tasks.Regression("b", weight=weights[1]),
            tasks.Multiclass("c", num_classes=3, weight=weights[2]),
        ],
        trunk=mtl.trunks.mlp([16, 8]),
    )


def train(strategy, x, y, initial, optimizer, weighting=lambda: "fixed"):
    with strategy.scope():
        model = build()
        model.set_weights(initial)
        model.compile(optimizer=optimizer(), weighting=weighting())
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    history = model.fit(ds, epochs=2, verbose=0).history
    return model.get_weights(), history


@pytest.mark.slow
@pytest.mark.parametrize(
    "optimizer",
    [lambda: keras.optimizers.SGD(0.1), lambda: keras.optimizers.Adam(0.01)],
    ids=["sgd", "adam"],
)
def test_mirrored_two_devices_equal_one_device(rng, optimizer):
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "conftest sets up two logical CPU devices"
    x, y = uneven_data(rng)
    # The test has teeth only if replicas see different label counts.
    first, second = y["a"][:8], y["a"][8:16]
    assert (first >= 0).sum() != (second >= 0).sum()

    assert_same_training(x, y, optimizer)


@pytest.mark.slow
def test_auto_steps_per_execution_on_one_device_equals_two_devices(rng):
    # 5 global batches an epoch: on one device, one execution of 32 steps cut short by the
    # data. Under Mirrored "auto" is one step per execution: Keras 3.15's multi-step loop
    # fails there for any model.
    x, y = uneven_data(rng, n=80)
    initial = build().get_weights()
    _, mirrored = strategies()
    runs = {}
    for name, strategy in (("one", None), ("two", mirrored)):
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = build()
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.Adam(0.01))
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
        history = model.fit(ds, epochs=2, validation_data=ds, verbose=0).history
        runs[name] = (model, history)
    (one, h1), (two, h2) = runs["one"], runs["two"]
    assert one.steps_per_execution == 32 and two.steps_per_execution == 1
    assert int(one.optimizer.iterations.numpy()) == int(two.optimizer.iterations.numpy()) == 10
    for w1, w2 in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    # Validation metrics too: replicas see different label counts (Keras' own
    # evaluate would average each replica's accuracy).
    for key in h1:
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5, atol=1e-6, err_msg=key)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    logs = two.evaluate(ds, verbose=0, return_dict=True)
    assert logs == pytest.approx(one.evaluate(ds, verbose=0, return_dict=True), rel=1e-5)
    assert two.evaluate(ds, verbose=0) == pytest.approx(one.evaluate(ds, verbose=0), rel=1e-5)


def assert_same_training(x, y, optimizer, weighting=lambda: "fixed"):
    initial = build().get_weights()
    one_device, mirrored = strategies()
    one, h1 = train(one_device, x, y, initial, optimizer, weighting)
    two, h2 = train(mirrored, x, y, initial, optimizer, weighting)
    moved = max(np.abs(w - w0).max() for w, w0 in zip(one, initial))
    assert moved > 1e-3, "training must actually change the weights"
    for w1, w2 in zip(one, two):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    for key in ("a_loss", "b_loss", "c_loss", "loss", "a_weight", "b_weight", "c_weight"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5, atol=1e-6, err_msg=key)


METHODS = [
    (name, mode)
    for name in mtl.weighting.available()
    if name != "fixed"
    for mode in (
        getattr(mtl.weighting.get(name), "modes", (None,))
    )
]


@pytest.mark.slow
@pytest.mark.parametrize("name, mode", METHODS, ids=[f"{n}-{m}" if m else n for n, m in METHODS])
def test_every_weighting_method_is_exact_under_mirrored_strategy(rng, name, mode):
    x, y = uneven_data(rng)
    kwargs = {"mode": mode} if mode else {}
    assert_same_training(
        x, y, lambda: keras.optimizers.SGD(0.1), lambda: mtl.weighting.get(name, **kwargs)
    )


@pytest.mark.slow
def test_shuffled_in_memory_pipeline_is_exact_under_mirrored_strategy(rng):
    # Keras reads one extra pass of the data under a strategy (its symbolic
    # build) but not without one; the shuffle is keyed by (seed, epoch), not
    # by passes read, so both runs still see the same global batches in every
    # epoch. (The reference is the default strategy: OneDeviceStrategy would
    # read the extra pass too.)
    x, y = uneven_data(rng)
    task_list = [tasks.Binary("a"), tasks.Regression("b"), tasks.Multiclass("c", num_classes=3)]
    initial = None
    runs = []
    for strategy in (tf.distribute.get_strategy(), strategies()[1]):
        with strategy.scope():
            model = mtl.models.shared_bottom({"x": keras.Input((5,), name="x")}, task_list, trunk=mtl.trunks.mlp([16, 8]))
            initial = initial or model.get_weights()
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(0.1))
        train = mtl.data.from_columns({"x": x}, y, batch_size=GLOBAL_BATCH, shuffle=True, seed=5)
        history = model.fit(train, epochs=3, verbose=0).history
        runs.append((model.get_weights(), history))
    (one, h1), (two, h2) = runs
    for w1, w2 in zip(one, two):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-5)


def assert_exact_on_two_devices(build, x, y, keys, callbacks=list, epochs=2, **compile_kwargs):
    """Trains `build()` from one set of initial weights on one device and on two (with fresh
    `callbacks()` each); the weights and the history `keys` must match, and training must move the weights."""
    initial, runs = None, []
    for strategy in strategies():
        with strategy.scope():
            model = build()
            initial = initial or [w.copy() for w in model.get_weights()]  # not views of the variables
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(0.1), **compile_kwargs)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
        history = model.fit(ds, epochs=epochs, verbose=0, callbacks=callbacks()).history
        runs.append((model.get_weights(), history))
    (one, h1), (two, h2) = runs
    assert max(np.abs(w - w0).max() for w, w0 in zip(one, initial)) > 1e-3
    for w1, w2 in zip(one, two):
        np.testing.assert_allclose(w1, w2, atol=1e-5, rtol=0)
    for key in keys:
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["pairwise", "listwise"])
def test_ranking_losses_compare_examples_across_replicas_exactly(rng, loss):
    n = 48
    x = rng.normal(size=(n, 5)).astype("float32")
    relevance = np.clip(np.round(x[:, 0] + rng.normal(scale=0.5, size=n)), 0, 3).astype("float32")
    relevance[np.arange(n) % 7 == 0] = np.nan
    # Interleaved groups: each group's examples sit on both replicas, so pairs and lists cross them.
    query = (np.arange(n) % 3).astype("int64")
    click = (x[:, 1] > 0).astype("float32")
    assert_exact_on_two_devices(
        lambda: mtl.models.shared_bottom(
            keras.Input((5,)),
            [tasks.Ranking("relevance", group="query", loss=loss), tasks.Binary("click")],
            trunk=mtl.trunks.mlp([8]),
        ),
        x, {"relevance": relevance, "query": query, "click": click},
        ("relevance_loss", "relevance_ndcg", "click_loss", "loss"),
    )


@pytest.mark.slow
@pytest.mark.parametrize("entire_space", [False, True], ids=["conditional", "esmm"])
def test_conditional_and_ziln_tasks_are_exact_under_mirrored_strategy(rng, entire_space):
    n = 48
    x = rng.normal(size=(n, 5)).astype("float32")
    click = (x[:, 0] > 0).astype("float32")
    position = np.arange(n) % GLOBAL_BATCH
    click[position < 8] = (x[position < 8, 0] > 1.0)  # replica 0 sees far fewer clicks: uneven sample spaces
    buy = np.where(click == 1, (x[:, 2] > 0).astype("float32"), np.nan).astype("float32")
    assert click[:8].sum() != click[8:16].sum()
    # A zero-inflated value, missing on some rows (the ZILN task trains alongside).
    spend = np.where(buy == 1, np.exp(x[:, 3]), 0.0).astype("float32")
    spend[position % 5 == 0] = np.nan
    assert_exact_on_two_devices(
        lambda: mtl.models.shared_bottom(
            keras.Input((5,)),
            [tasks.Binary("click"), tasks.Binary("buy", given="click", entire_space=entire_space),
             tasks.ZeroInflatedLognormal("spend")],
            trunk=mtl.trunks.mlp([16, 8]),
        ),
        x, {"click": click, "buy": buy, "spend": spend},
        ("click_loss", "buy_loss", "spend_loss", "loss", "buy_auc", "click_and_buy_auc", "spend_mae"),
    )


@pytest.mark.slow
@pytest.mark.parametrize("architecture, kwargs", [("shared_bottom", {}), ("mmoe", {"num_experts": 2, "expert_units": [8]})])
def test_aitm_with_its_calibrator_is_exact_under_mirrored_strategy(rng, architecture, kwargs):
    n = 48
    x = rng.normal(size=(n, 5)).astype("float32")
    click = (x[:, 0] > 0).astype("float32")
    buy = click * (x[:, 1] > 0)
    buy[np.arange(n) % 7 == 0] = np.nan  # some missing, unevenly across replicas
    assert_exact_on_two_devices(
        lambda: mtl.models.aitm(keras.Input((5,)), [tasks.Binary("click"), tasks.Binary("buy")],
                                trunk=mtl.trunks.mlp([8]), tower_units=[8], calibrator=0.6,
                                architecture=architecture, **kwargs),
        x, {"click": click, "buy": buy}, ("click_loss", "buy_loss", "loss"),
    )


@pytest.mark.slow
@pytest.mark.parametrize("precompute", [False, True], ids=["teacher_in_step", "precomputed"])
def test_distillation_is_exact_under_mirrored_strategy(rng, precompute):
    from keras_mtl.distillation import Distillation, anneal

    x, y = uneven_data(rng)
    keras.utils.set_random_seed(11)
    teacher = build()  # its own initial weights: its outputs differ from the student's
    # Task a has few labels on replica 0; its teacher term counts every row.
    distillation = Distillation(teacher, temperature=2.0, label_weight={"a": 0.2, "b": 0.6, "c": 0.5})
    if precompute:
        _, y = distillation.precompute(x, y)
    assert_exact_on_two_devices(build, x, y, ["loss", "a_loss", "b_loss", "c_loss"], distillation=distillation)
    annealed = Distillation(teacher, label_weight=anneal(4), tasks=["a", "c"])
    assert_exact_on_two_devices(build, x, y, ["loss", "a_loss", "c_loss"], distillation=annealed)


@pytest.mark.slow
@pytest.mark.parametrize("freeze", ["trunk", "none"])
def test_extended_model_is_exact_under_mirrored_strategy(rng, freeze):
    x, y = uneven_data(rng)
    old = build()
    y = dict(y, d=np.where(np.arange(len(x)) % 16 < 8, -1.0, (x[:, 1] > 0)).astype("float32"))
    assert_exact_on_two_devices(
        lambda: mtl.models.extend(old, [tasks.Binary("d", tower=[4])], freeze=freeze), x, y, ["loss", "a_loss", "d_loss"]
    )


@pytest.mark.slow
def test_per_task_early_stopping_is_exact_under_mirrored_strategy(rng):
    x, y = uneven_data(rng)
    stopped = []

    def callbacks():
        # "max" on a falling training loss: task a stops after epoch 1, b and c train on.
        stopped.append(mtl.callbacks.PerTaskEarlyStopping(
            monitor={"a": "a_loss", "b": "b_loss", "c": "c_loss"}, mode={"a": "max"}, patience=1))
        return [stopped[-1]]

    assert_exact_on_two_devices(build, x, y, ["loss", "a_loss", "b_loss"], callbacks=callbacks, epochs=4)
    assert [s.stopped_epochs for s in stopped] == [{"a": 1}, {"a": 1}]
