"""AITM: information transfer between funnel steps' towers, and the p(later) <= p(earlier) calibrator."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.layers import InformationTransfer
from keras_mtl.tasks import Binary, Regression


def test_information_transfer_is_attention_over_the_two_inputs():
    layer = InformationTransfer()
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(3, 4)).astype("float32")
    z = np.asarray(layer([p, q]))
    w1, w2, w3 = (layer.h1.kernel.numpy(), layer.h2.kernel.numpy(), layer.h3.kernel.numpy())
    for i in range(3):
        scores = np.array([(u @ w1) @ (u @ w2) / 2.0 for u in (p[i], q[i])])  # / sqrt(4)
        weights = np.exp(scores) / np.exp(scores).sum()
        np.testing.assert_allclose(z[i], weights[0] * (p[i] @ w3) + weights[1] * (q[i] @ w3), rtol=1e-5)


def test_aitm_builds_a_chain_and_the_calibrator_bounds_later_steps():
    tasks = [Binary("view"), Binary("click"), Binary("buy")]
    model = mtl.models.aitm(keras.Input((5,), name="x"), tasks, tower_units=[8], calibrator=0.6)
    assert [model.get_task(n).at_most for n in ("view", "click", "buy")] == [None, "view", "click"]
    assert model.get_layer("buy_ait") is not None and model.get_layer("click_transfer") is not None
    # The penalty, by hand: 0.6 x max(p(buy) - p(click), 0) added to buy's per-example loss.
    y = {n: np.array([1.0, 0.0], "float32") for n in ("view", "click", "buy")}
    preds = {"view": tf.constant([[0.9], [0.5]]), "click": tf.constant([[0.4], [0.2]]),
             "buy": tf.constant([[0.6], [0.1]])}
    losses, _ = model.task_losses(y, preds)
    bce = -(np.log(0.6) + np.log(0.9)) / 2
    assert float(losses["buy"]) == pytest.approx(bce + 0.6 * (0.2 + 0.0) / 2, rel=1e-5)
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(256, 5)).astype("float32")
    view = (x[:, 0] > -0.5).astype("float32")
    click = view * (x[:, 1] > 0)
    buy = click * (x[:, 2] > 0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit({"x": x}, {"view": view, "click": click, "buy": buy}, epochs=3, batch_size=64, verbose=0)
    assert history.history["buy_auc"][-1] > 0.8


@pytest.mark.parametrize("architecture, kwargs", [
    ("mmoe", {"num_experts": 3, "expert_units": [8]}),
    ("ple", {"num_levels": 2, "num_experts": 1, "num_task_experts": 1, "expert_units": [8]}),
])
def test_aitm_towers_read_each_tasks_mixture_under_mmoe_and_ple(architecture, kwargs):
    tasks = [Binary("click"), Binary("buy")]
    model = mtl.models.aitm(keras.Input((5,), name="x"), tasks, tower_units=[8], calibrator=0.5,
                            architecture=architecture, unknown_labels="ignore", **kwargs)
    names = [layer.name for layer in model.layers]
    # Each task's tower reads its own gated mixture (of the last level, for PLE), not the trunk output.
    for task in ("click", "buy"):
        tower = model.get_layer(f"{task}_aitm_tower_0")
        producer = tower._inbound_nodes[0].input_tensors[0]._keras_history.operation
        assert producer.name.startswith(f"{task}_mixture"), producer.name
        assert any(n.startswith(f"{task}_gate") for n in names)
    assert "buy_ait" in names and "click_transfer" in names and model.unknown_labels == "ignore"
    assert model.get_task("buy").at_most == "click" and model.representation == "representation"
    # Heads of the architecture's own (`<task>` Dense on the mixture) are replaced, not kept beside.
    assert sum(layer.name == "buy" for layer in model.layers) == 1
    x = np.random.default_rng(0).normal(size=(256, 5)).astype("float32")
    click = (x[:, 0] > 0).astype("float32")
    buy = click * (x[:, 1] > 0)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit({"x": x}, {"click": click, "buy": buy, "other": click}, epochs=4, batch_size=64, verbose=0).history
    assert history["buy_auc"][-1] > 0.8 and history["loss"][-1] < history["loss"][0]


def test_bad_aitm_and_at_most_requests():
    x = keras.Input((3,))
    with pytest.raises(ValueError, match="aitm: tasks must be two or more Binary tasks"):
        mtl.models.aitm(x, [Binary("click"), Regression("spend")])
    with pytest.raises(ValueError, match="calibrator must be >= 0"):
        mtl.models.aitm(x, [Binary("click"), Binary("buy")], calibrator=-1)
    with pytest.raises(ValueError, match="nope"):
        mtl.models.aitm(x, [Binary("click"), Binary("buy")], architecture="nope")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \[.num_experts.\]"):
        mtl.models.aitm(x, [Binary("click"), Binary("buy")], num_experts=2)  # shared_bottom has no experts
    with pytest.raises(ValueError, match="Task 'buy' is at_most 'clik', which is not a Binary task of this model"):
        mtl.models.shared_bottom(x, [Binary("click"), Binary("buy", at_most="clik")])
    with pytest.raises(ValueError, match="at_most bounds a Binary task's probability"):
        Regression("spend", at_most="click")
    with pytest.raises(ValueError, match="at_most_weight must be a finite number >= 0"):
        Binary("buy", at_most="click", at_most_weight=-0.5)


@pytest.mark.slow
def test_aitm_from_the_run_config(census_small):
    from keras_mtl import config, training

    cfg = config.from_dict(config.Config, {
        "name": "t",
        "model": {"architecture": "mmoe", "num_experts": 2, "expert_units": [4], "trunk": {"units": [8]},
                  "aitm": {"tower_units": [6], "calibrator": 0.5}},
    })
    model = training.build_model(cfg, census_small, list(census_small.tasks))
    names = [layer.name for layer in model.layers]
    # Tasks in the config's order are the funnel: the second reads the first's transfer.
    assert "never_married_ait" in names and "income_transfer" in names and "income_gate" in names
    assert model.get_layer("income_aitm_tower_0").units == 6
    assert model.get_task("never_married").at_most == "income"
    assert model.get_task("never_married").at_most_weight == 0.5
    history = model.fit(census_small.train.take(2), verbose=0).history
    assert np.isfinite(history["loss"][-1])


@pytest.mark.parametrize("model, message", [
    ({"aitm": {"tower_units": []}}, r"model.aitm.tower_units must be a non-empty list of positive integers, got \[\]"),
    ({"aitm": {"calibrator": -1}}, r"model.aitm.calibrator must be a finite number >= 0, got -1.0"),
    ({"aitm": {"tower": [4]}}, r"Unknown config key 'model.aitm.tower'; did you mean 'model.aitm.tower_units'\?"),
    ({"architecture": "single_task", "aitm": {}}, r"model.aitm transfers information between tasks; .*single_task"),
    ({"init_from": "m.keras", "aitm": {}}, r"model.aitm builds new towers, but model.init_from"),
])
def test_bad_aitm_config_keys_are_named(model, message):
    from keras_mtl import config

    with pytest.raises(config.ConfigError, match=message):
        config.from_dict(config.Config, {"name": "t", "model": model})


def test_a_null_aitm_section_is_started_by_set():
    from keras_mtl import config

    data = config.apply_overrides({"name": "t", "model": {"aitm": None}}, ["model.aitm.calibrator=0.5"])
    assert config.from_dict(config.Config, data).model.aitm.kwargs() == {"tower_units": [64, 32], "calibrator": 0.5}


def test_aitm_config_on_tasks_it_cannot_chain_is_named(census_small):
    from keras_mtl import config, training

    cfg = config.from_dict(config.Config, {"name": "t", "model": {"aitm": {}}})
    tasks = [Binary("income"), Regression("age_like", label="never_married")]
    with pytest.raises(config.ConfigError, match=r"model.aitm: aitm: tasks must be two or more Binary tasks"):
        training.build_model(cfg, census_small, tasks)
