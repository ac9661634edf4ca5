"""Ranking tasks: pairwise and listwise losses within groups, and NDCG, against hand computation."""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl import _ranking
from keras_mtl.tasks import Binary, Ranking

SCORES = np.float32([2.0, -1.0, 0.5, 1.5, 0.0, 3.0, -0.5])
LABELS = np.float32([2.0, 0.0, 1.0, np.nan, 1.0, 0.0, 1.0])  # one missing
GROUPS = np.int64([7, 7, 7, 7, 9, 9, 4])  # group 4 has one example: no pair, no list with a choice


def present():
    return ~np.isnan(LABELS)


def by_hand_pairwise():
    terms = []
    for i, j in itertools.permutations(range(len(SCORES)), 2):
        if present()[i] and present()[j] and GROUPS[i] == GROUPS[j] and LABELS[i] > LABELS[j]:
            terms.append(math.log1p(math.exp(-(SCORES[i] - SCORES[j]))))
    return sum(terms) / len(terms), len(terms)


def by_hand_listwise(scores=SCORES, labels=LABELS, groups=GROUPS):
    losses = []
    for g in np.unique(groups):
        idx = [i for i in range(len(scores)) if groups[i] == g and not np.isnan(labels[i])]
        y, s = labels[idx].astype("float64"), scores[idx].astype("float64")
        if y.sum() <= 0:
            continue
        log_softmax = s - math.log(np.exp(s).sum())
        losses.append(-(y / y.sum() * log_softmax).sum())
    return sum(losses) / len(losses), len(losses)


def by_hand_ndcg(k=None, scores=SCORES, labels=LABELS, groups=GROUPS):
    values = []
    for g in np.unique(groups):
        idx = [i for i in range(len(scores)) if groups[i] == g and not np.isnan(labels[i])]
        y, s = labels[idx].astype("float64"), scores[idx].astype("float64")

        def dcg(order):
            return sum((2 ** y[i] - 1) / math.log2(r + 2) for r, i in enumerate(order) if k is None or r < k)

        ideal = dcg(np.argsort(-y, kind="stable"))
        if ideal > 0:
            values.append(dcg(np.argsort(-s, kind="stable")) / ideal)
    return sum(values), len(values)


def weights():
    return present().astype("float32")


def test_pairwise_loss_is_ranknet_over_the_pairs_of_each_group():
    loss, pairs = _ranking.pairwise_logistic(SCORES, np.nan_to_num(LABELS), weights(), GROUPS)
    expected, count = by_hand_pairwise()
    assert float(pairs) == count == 4  # group 7: (0,1), (0,2), (2,1); group 9: (4,5)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_listwise_loss_is_listnet_top_one_over_each_group():
    loss, lists = _ranking.listwise_softmax(SCORES, np.nan_to_num(LABELS), weights(), GROUPS)
    expected, count = by_hand_listwise()
    assert float(lists) == count == 3  # a one-example group with a positive label counts (its loss is 0)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("k", [None, 1, 2])
def test_ndcg_by_hand(k):
    total, lists = _ranking.ndcg(SCORES, np.nan_to_num(LABELS), weights(), GROUPS, k)
    expected, count = by_hand_ndcg(k)
    assert float(lists) == count
    assert float(total) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("compiled", [False, True])
def test_listwise_and_ndcg_match_the_hand_computation_on_a_large_random_batch(compiled):
    # Per group sorts and segment sums in the library, a loop over groups here: many groups,
    # tied scores and labels (ties rank the earlier example first), missing labels, a
    # group with no positive label, under XLA too.
    rng = np.random.default_rng(3)
    n = 300
    scores = np.round(rng.normal(size=n), 1).astype("float32")
    labels = rng.integers(0, 3, n).astype("float32")
    labels[rng.random(n) < 0.2] = np.nan
    groups = rng.integers(0, 40, n).astype("int64")
    labels[groups == 5] = 0.0
    w = (~np.isnan(labels)).astype("float32")

    def run(fn, *args):
        f = tf.function(fn, jit_compile=True) if compiled else fn
        return [float(v) for v in f(scores, np.nan_to_num(labels), w, groups, *args)]

    loss, lists = run(_ranking.listwise_softmax)
    want, want_lists = by_hand_listwise(scores, labels, groups)
    assert lists == want_lists and loss == pytest.approx(want, rel=1e-5)
    for k in (None, 3):
        total, count = run(lambda *a: _ranking.ndcg(*a, k=k))
        want, want_count = by_hand_ndcg(k, scores, labels, groups)
        assert count == want_count and total == pytest.approx(want, rel=1e-5)


def test_string_group_ids_are_hashed_and_compare_equal():
    names = np.array(["q7", "q7", "q7", "q7", "q9", "q9", "q4"])
    a = _ranking.pairwise_logistic(SCORES, np.nan_to_num(LABELS), weights(), names)
    b = _ranking.pairwise_logistic(SCORES, np.nan_to_num(LABELS), weights(), GROUPS)
    np.testing.assert_allclose([float(v) for v in a], [float(v) for v in b])


def ranking_data(n=1024, groups=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    relevance = np.clip(np.round(x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n)), 0, 3).astype("float32")
    relevance[rng.random(n) < 0.1] = np.nan
    click = (x[:, 0] + rng.normal(size=n) > 0).astype("float32")
    return x, {"relevance": relevance, "click": click, "query": np.repeat(np.arange(groups), n // groups)}


@pytest.mark.parametrize("loss", ["pairwise", "listwise"])
def test_a_ranking_task_trains_beside_a_binary_one_and_logs_ndcg(loss, tmp_path):
    x, y = ranking_data()
    keras.utils.set_random_seed(0)
    model = mtl.models.shared_bottom(
        keras.Input((5,), name="x"), [Ranking("relevance", group="query", loss=loss, ndcg_at=5), Binary("click")],
        trunk=mtl.trunks.mlp([16]),
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit({"x": x}, y, batch_size=128, epochs=4, shuffle=False, validation_split=0.25, verbose=0).history
    assert history["relevance_loss"][-1] < history["relevance_loss"][0]
    assert history["val_relevance_ndcg"][-1] > 0.85 and history["relevance_ndcg"][-1] > history["relevance_ndcg"][0]
    assert model.output["relevance"].shape == (None, 1)
    path = tmp_path / "ranking.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    task = loaded.get_task("relevance")
    assert (type(task), task.loss, task.group, task.ndcg_at) == (Ranking, loss, "query", 5)
    np.testing.assert_allclose(loaded.predict({"x": x[:8]}, verbose=0)["relevance"],
                               model.predict({"x": x[:8]}, verbose=0)["relevance"])


def test_the_model_loss_is_the_hand_computed_pairwise_loss():
    model = mtl.models.shared_bottom(keras.Input((1,), name="s"), [Ranking("relevance", group="query")],
                                     trunk=lambda inputs: inputs)
    model.get_layer("relevance").set_weights([np.ones((1, 1), "float32"), np.zeros(1, "float32")])
    y = {"relevance": LABELS, "query": GROUPS}
    losses, counts = model.task_losses(y, {"relevance": tf.constant(SCORES[:, None])})
    assert float(losses["relevance"]) == pytest.approx(by_hand_pairwise()[0], rel=1e-6) and float(counts["relevance"]) == 4


def test_bad_ranking_requests_are_named():
    with pytest.raises(ValueError, match="Ranking loss must be one of .* got 'pointwise'"):
        Ranking("r", group="q", loss="pointwise")
    with pytest.raises(ValueError, match="group must be another label key"):
        Ranking("r", group="r")
    with pytest.raises(ValueError, match="ndcg_at must be a positive int"):
        Ranking("r", group="q", ndcg_at=0)
    with pytest.raises(ValueError, match="cannot take given="):
        Ranking("r", group="q", given="click")
    x, y = ranking_data(64, 8)
    model = mtl.models.shared_bottom(keras.Input((5,), name="x"), [Ranking("relevance", group="query"), Binary("click")])
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="No group ids for task 'relevance' .* the key 'query'"):
        model.fit({"x": x}, {"relevance": y["relevance"], "click": y["click"]}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"Task 'relevance'.*value -3.0 at row 0 is negative; values are >= 0 \(-1 or NaN = missing\)"):
        model.fit({"x": x}, dict(y, relevance=np.full(64, -3.0, "float32")), epochs=1, verbose=0)
    # In a graph (data not checked before the step), the step's own check names the task.
    with pytest.raises(tf.errors.InvalidArgumentError, match="Task relevance: relevance labels must be finite and >= 0"):
        model.task_losses(dict(y, relevance=np.full(64, -3.0, "float32")), model(x), check=True)
    with pytest.raises(TypeError, match="has no loss per example"):
        Ranking("r", group="q").unit_losses(tf.zeros(2), tf.zeros(2))


def search_log(n=1200, queries=120, seed=0):
    """A made-up search log: 10 results per query, a relevance grade and a click."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "query": np.repeat([f"q{i}" for i in range(queries)], n // queries),
        "price": rng.normal(size=n).round(3),
        "brand": rng.choice(["acme", "globex", "initech"], n),
    })
    frame["relevance"] = np.clip(np.round(1.2 - frame.price + rng.normal(scale=0.4, size=n)), 0, 3)
    frame["clicked"] = (frame.relevance >= 2).astype(int)
    return frame


def test_from_dataframe_keeps_the_group_column_as_a_label_not_a_feature():
    tasks = [Ranking("relevance", group="query"), Binary("clicked")]
    data = mtl.data.from_dataframe(search_log(), tasks, echo=None)
    assert sorted(data.inputs) == ["brand", "price"]
    _, labels = next(iter(data.train))
    # Hashed to int64: numeric labels keep the step XLA-compilable.
    assert labels["query"].dtype == tf.int64 and sorted(labels) == ["clicked", "query", "relevance"]
    with pytest.raises(ValueError, match="No group column 'session' \\(task 'relevance'\\) in the train split"):
        mtl.data.from_dataframe(search_log(), [Ranking("relevance", group="session")], echo=None)
    broken = search_log()
    broken.loc[5, "query"] = None
    with pytest.raises(ValueError, match="Group 'query' \\(task 'relevance'\\) has a missing id at row"):
        mtl.data.from_dataframe(broken, tasks, echo=None)


def test_training_batches_keep_each_group_together_in_a_new_order_every_epoch():
    from keras_mtl.data.pipeline import from_columns

    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, size=40)
    groups = rng.permutation(np.repeat(np.arange(40) * 7, sizes))  # a group's rows scattered in the table
    n = len(groups)
    ds = from_columns({"row": np.arange(n)}, {"query": groups, "relevance": np.zeros(n, "float32")},
                      batch_size=32, shuffle=True, seed=3, group="query")
    orders = []
    for _ in range(2):
        rows = np.concatenate([b[0]["row"].numpy() for b in ds])
        assert sorted(rows.tolist()) == list(range(n))  # every row once
        seen = groups[rows]
        # Each group's rows are consecutive: the group id changes exactly (groups - 1) times.
        assert int((seen[1:] != seen[:-1]).sum()) == len(np.unique(groups)) - 1
        orders.append(rows)
    assert not np.array_equal(*orders)  # a new order of groups each epoch
    with pytest.raises(ValueError, match="group 'session' is not a label key"):
        from_columns({"row": np.arange(n)}, {"query": groups}, shuffle=True, group="session")


def test_from_dataframe_shuffles_whole_groups_for_a_ranking_task():
    tasks = [Ranking("relevance", group="query"), Binary("clicked")]
    data = mtl.data.from_dataframe(search_log(), tasks, echo=None, batch_size=64)
    for features, labels in data.train.take(3):
        ids = labels["query"].numpy()
        runs = 1 + int((ids[1:] != ids[:-1]).sum())
        assert runs == len(np.unique(ids)) < 20  # each query's rows in one run; ~8 training rows per query


@pytest.mark.slow
def test_a_ranking_task_from_a_run_config(tmp_path, monkeypatch):
    import yaml

    from keras_mtl import cli, config as config_lib

    monkeypatch.chdir(tmp_path)
    search_log().to_csv("search.csv", index=False)
    config = {
        "name": "search",
        "data": {"path": "search.csv", "batch_size": 200},
        "tasks": [{"name": "relevance", "type": "ranking", "group": "query", "loss": "listwise", "ndcg_at": 5},
                  {"name": "clicked", "type": "binary"}],
        "train": {"epochs": 2},
    }
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(config))
    assert cli.main(["train", "search.yaml"]) == 0
    model = keras.saving.load_model(next(tmp_path.glob("checkpoints/search/*/best.keras")))
    task = model.get_task("relevance")
    assert (type(task), task.group, task.loss, task.ndcg_at) == (Ranking, "query", "listwise", 5)
    for bad, message in (({"group": None}, "tasks\\[0\\].group is required for a ranking task"),
                         ({"loss": "pointwise"}, "Ranking loss must be one of"),
                         ):
        entry = {**config["tasks"][0], **bad}
        with pytest.raises(config_lib.ConfigError, match=message):
            config_lib.from_dict(config_lib.Config, {**config, "tasks": [entry, config["tasks"][1]]})
    with pytest.raises(config_lib.ConfigError, match="tasks\\[1\\].group applies to ranking tasks only"):
        config_lib.from_dict(config_lib.Config, {**config, "tasks": [config["tasks"][0], {"name": "clicked", "type": "binary", "group": "query"}]})
