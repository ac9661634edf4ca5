"""`mtl.explain`: per-task attributions to raw columns, shared vs task-specific, expert usage."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.explanations import ExplainError
from keras_mtl.export import RequestError
from keras_mtl.preprocessing import FeatureSpace


def _smooth(units=(8,)):
    # tanh: smooth, so the quadrature of integrated gradients is exact to float error.
    return mtl.trunks.mlp(list(units), activation="tanh")


def _rows(n=64, width=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, width)).astype("float32")


ALL_TYPES = [
    mtl.tasks.Binary("click"),
    mtl.tasks.Multiclass("tier", 4),
    mtl.tasks.Multilabel("tags", 3),
    mtl.tasks.Regression("spend"),
]


def test_completeness_for_every_task_type():
    keras.utils.set_random_seed(1)
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), ALL_TYPES, trunk=_smooth())
    e = mtl.explain(model, {"x": _rows()})
    assert e.tasks == ["click", "tier", "tags", "spend"]
    for task, gap in e.completeness_gap().items():
        spread = np.abs(e.outputs[task] - e.baseline_outputs[task]).max()
        assert spread > 1e-3, task  # not trivially complete
        assert gap < 1e-4 * max(1.0, spread), (task, gap)
    # Multiclass / Multilabel explain the predicted unit at each example.
    probs = model.predict({"x": _rows()}, verbose=0)
    np.testing.assert_array_equal(e.targets["tier"], probs["tier"].argmax(1))
    np.testing.assert_allclose(e.outputs["tier"], probs["tier"].max(1), rtol=1e-5)


def test_linear_model_credits_are_weight_times_distance_from_the_mean():
    # For f(x) = w.x + c, integrated gradients give w_i (x_i - mean_i): hand-checkable
    # by moving one column to its mean and reading the change of the prediction.
    keras.utils.set_random_seed(2)
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Regression("y")], trunk=lambda x: x)
    x = _rows(16)
    e = mtl.explain(model, {"x": x})
    g = mtl.explain(model, {"x": x}, method="gradient_x_input")
    base = model.predict({"x": x}, verbose=0)["y"][:, 0]
    for i in range(3):
        moved = x.copy()
        moved[:, i] = x[:, i].mean()
        expected = base - model.predict({"x": moved}, verbose=0)["y"][:, 0]
        np.testing.assert_allclose(e.attributions["y"][:, i], expected, atol=1e-5)
        np.testing.assert_allclose(g.attributions["y"][:, i], expected, atol=1e-5)
    assert e.columns == ["x[0]", "x[1]", "x[2]"]


def test_recovers_which_column_drives_which_task():
    # Task a reads x1 (and the shared x3), task b reads x2 (and x3); x4 is noise.
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    n = 3000
    cols = {f"x{i}": rng.normal(size=(n, 1)).astype("float32") for i in range(1, 5)}
    y = {
        "a": (2 * cols["x1"][:, 0] + cols["x3"][:, 0]).astype("float32"),
        "b": (-2 * cols["x2"][:, 0] + cols["x3"][:, 0]).astype("float32"),
    }
    inputs = {k: keras.Input((1,), name=k) for k in cols}
    concat = lambda x: keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([x[k] for k in sorted(x)]))
    model = mtl.models.shared_bottom(inputs, [mtl.tasks.Regression("a"), mtl.tasks.Regression("b")], trunk=concat)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(cols, y, epochs=10, batch_size=128, verbose=0)
    e = mtl.explain(model, {k: v[:500] for k, v in cols.items()})
    assert e.top("a", 1).index[0] == "x1"
    assert e.top("b", 1).index[0] == "x2"
    sharing = e.sharing()
    assert sharing.loc["x3", "kind"] == "shared"
    assert sharing.loc["x1", "kind"] == "specific" and sharing.loc["x1", "tasks"] == "a"
    assert sharing.loc["x2", "kind"] == "specific" and sharing.loc["x2", "tasks"] == "b"
    assert sharing.loc["x4", "kind"] == "minor"
    low, high = e.interval()
    assert (low.loc["a", "x1"] > high.loc["a", "x4"]) and (low.loc["b", "x2"] > high.loc["b", "x4"])
    assert 0 < e.similarity().loc["a", "b"] < 1


def test_one_hot_block_sums_back_to_its_column():
    # The same weights fed a one-hot block from a string lookup, and the same block as
    # three numeric inputs: the string column's credit is the three slots' credits summed.
    keras.utils.set_random_seed(4)
    lookup = keras.layers.StringLookup(vocabulary=["oslo", "rome"], output_mode="one_hot", name="lookup")
    dense = keras.layers.Dense(4, activation="tanh", name="hidden")
    city = keras.Input((1,), dtype="string", name="city")
    age = keras.Input((1,), name="age")
    tasks = [mtl.tasks.Binary("y")]
    by_string = mtl.models.shared_bottom(
        {"city": city, "age": age}, tasks,
        trunk=lambda x: dense(keras.layers.Concatenate()([x["age"], lookup(x["city"])])),
    )
    slots_in, age_in = keras.Input((3,), name="slots"), keras.Input((1,), name="age")
    by_slots = mtl.models.shared_bottom(
        {"slots": slots_in, "age": age_in}, tasks, trunk=lambda x: dense(keras.layers.Concatenate()([x["age"], x["slots"]]))
    )
    by_slots.get_layer("y").set_weights(by_string.get_layer("y").get_weights())
    names = np.array(["oslo", "rome", "lima", "rome", "oslo", "oslo"], dtype=object)
    ages = np.array([[0.3], [-1.1], [0.5], [1.6], [-0.2], [0.9]], "float32")
    onehot = lookup(tf.constant(names[:, None])).numpy()
    a = mtl.explain(by_string, pd.DataFrame({"city": names, "age": ages[:, 0]}))
    b = mtl.explain(by_slots, {"slots": onehot, "age": ages})
    assert a.columns == ["age", "city"]
    slots = [b.columns.index(f"slots[{i}]") for i in range(3)]
    np.testing.assert_allclose(a.attributions["y"][:, 1], b.attributions["y"][:, slots].sum(1), atol=1e-6)
    np.testing.assert_allclose(a.attributions["y"][:, 0], b.attributions["y"][:, b.columns.index("age")], atol=1e-6)


def _text_model():
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    words = np.array(["good", "bad", "meh", "fine"])
    text = np.array([" ".join(rng.choice(words, rng.integers(1, 5))) for _ in range(400)], dtype=object)
    fs = FeatureSpace(
        {"review": FeatureSpace.text(max_tokens=20, sequence_length=6, embedding_dim=4),
         "user": FeatureSpace.hashed(16, embedding_dim=2), "age": "float_normalized"},
        output_mode="dict",
    )
    users = np.array([f"u{i}" for i in rng.integers(0, 9, 400)], dtype=object)
    ages = rng.normal(40, 9, 400).astype("float32")
    fs.adapt({"review": text[:, None], "user": users[:, None], "age": ages[:, None]})
    model = mtl.models.shared_bottom(
        fs.get_inputs(), [mtl.tasks.Binary("liked"), mtl.tasks.Regression("stars")], trunk=mtl.trunks.tabular(fs, [8], activation="tanh")
    )
    return model, pd.DataFrame({"review": text, "user": users, "age": ages})


def test_text_tokens_line_up_with_their_credits():
    model, frame = _text_model()
    e = mtl.explain(model, frame.head(40))
    assert e.columns == ["age", "review", "user"]
    table = e.tokens["review"]
    for i, text in enumerate(frame["review"].head(40)):
        words = text.split()
        assert list(table.tokens[i, : len(words)]) == words
        assert (table.tokens[i, len(words) :] == "").all()
        np.testing.assert_array_equal(table.attributions["liked"][i, len(words) :], 0.0)  # padding
    for task in e.tasks:
        np.testing.assert_allclose(
            table.attributions[task].sum(1), e.attributions[task][:, e.columns.index("review")], atol=1e-6
        )
        assert e.completeness_gap()[task] < 1e-4
    word, credit = table.top("liked", 0, k=1)[0]
    assert word in frame["review"][0].split() and credit == pytest.approx(
        table.attributions["liked"][0][list(table.tokens[0]).index(word)]
    )


def test_expert_usage_and_collapse():
    keras.utils.set_random_seed(6)
    model = mtl.models.mmoe(
        keras.Input((3,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")], num_experts=3, expert_units=[4]
    )
    e = mtl.explain(model, {"x": _rows(32)})
    table = e.experts.tables[0]
    assert table.gates == ["a_gate", "b_gate"] and len(table.experts) == 3
    np.testing.assert_allclose(table.weights.sum(1), 1.0, rtol=1e-5)
    assert e.experts.collapsed == []
    # Make expert 2 a copy of expert 0: its outputs become identical, and it is flagged.
    experts = model.get_layer("shared_experts")
    values = [v.numpy() for v in experts.weights]
    for v in values:
        v[2] = v[0]
    experts.set_weights(values)
    collapsed = mtl.explain(model, {"x": _rows(32)}).experts.collapsed
    assert [(layer, i, j) for layer, i, j, _ in collapsed] == [("shared_experts", 0, 2)]
    assert collapsed[0][3] == pytest.approx(1.0)
    assert mtl.explain(model, {"x": _rows(8)}, experts=False).experts is None


def test_saved_files_tensorboard_images_and_report(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from keras_mtl.explanations.pictures import write_tensorboard
    from keras_mtl.report import render_report

    keras.utils.set_random_seed(7)
    model = mtl.models.mmoe(
        keras.Input((3,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Regression("b")], num_experts=2, expert_units=[4]
    )
    e = mtl.explain(model, {"x": _rows(20)})
    out = tmp_path / "logs" / "run1" / "explain"
    e.save(out)
    write_tensorboard(e.summary(), out)
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["tasks"] == ["a", "b"] and summary["columns"] == ["x[0]", "x[1]", "x[2]"]
    np.testing.assert_allclose(summary["importance"], e.importance().to_numpy())
    importance = pd.read_csv(out / "importance.csv")
    assert len(importance) == 6 and set(importance.columns) == {"task", "column", "importance", "low", "high", "share"}
    per_example = pd.read_csv(out / "attributions_a.csv")
    np.testing.assert_allclose(per_example[["x[0]", "x[1]", "x[2]"]].to_numpy(), e.attributions["a"], rtol=1e-6)
    events = EventAccumulator(str(out))
    events.Reload()
    assert {"explain/a/top_columns", "explain/b/top_columns", "explain/task_column_shares",
            "explain/experts/shared_experts/gate_weights"} <= set(events.Tags()["tensors"])
    page = open(render_report(tmp_path / "logs")).read()
    assert "Top columns of a" in page and "Shared and task-specific columns" in page


def test_bad_requests_are_named():
    model = mtl.models.shared_bottom(
        keras.Input((3,), name="x"), [mtl.tasks.Binary("a"), mtl.tasks.Regression("r", units=2)], trunk=_smooth()
    )
    rows = {"x": _rows(4)}
    with pytest.raises(ExplainError, match="no task 'nope'; its tasks are \\['a', 'r'\\]"):
        mtl.explain(model, rows, tasks=["nope"])
    with pytest.raises(ExplainError, match="unknown method 'shap'"):
        mtl.explain(model, rows, tasks="a", method="shap")
    with pytest.raises(ExplainError, match="task 'r' predicts 2 values; name the one to explain"):
        mtl.explain(model, rows)
    assert mtl.explain(model, rows, targets={"r": 1}).targets["r"].tolist() == [1, 1, 1, 1]
    with pytest.raises(ExplainError, match="targets\\['r'\\] must be an output unit 0..1; got 2"):
        mtl.explain(model, rows, targets={"r": 2})
    with pytest.raises(RequestError, match="Input 'x'.*is missing; the rows have columns \\['y'\\]"):
        mtl.explain(model, {"y": _rows(4)}, tasks="a")
    with pytest.raises(ExplainError, match="steps must be a positive integer"):
        mtl.explain(model, rows, tasks="a", steps=0)
    tagger = mtl.models.shared_bottom(
        keras.Input((5, 3), name="tokens"), [mtl.tasks.Tagging("ner", 3)],
        trunk=lambda x: {"sequence": keras.layers.Dense(4)(x), "pooled": keras.layers.GlobalAveragePooling1D()(x)},
    )
    with pytest.raises(ExplainError, match="task 'ner' \\(Tagging\\) gives an output per token"):
        mtl.explain(tagger, {"tokens": np.zeros((2, 5, 3), "float32")})


def test_baseline_options():
    keras.utils.set_random_seed(8)
    model = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Regression("y")], trunk=_smooth())
    x = _rows(10, 2)
    zeros = mtl.explain(model, {"x": x}, baseline="zeros")
    at_zero = model.predict({"x": np.zeros((1, 2), "float32")}, verbose=0)["y"][0, 0]
    np.testing.assert_allclose(zeros.baseline_outputs["y"], at_zero, rtol=1e-5)
    reference = _rows(50, 2, seed=9) + 3.0
    shifted = mtl.explain(model, {"x": x}, baseline={"x": reference})
    at_mean = model.predict({"x": reference.mean(0, keepdims=True)}, verbose=0)["y"][0, 0]
    np.testing.assert_allclose(shifted.baseline_outputs["y"], at_mean, rtol=1e-5)
    with pytest.raises(ExplainError, match="baseline must be None, 'zeros' or rows"):
        mtl.explain(model, {"x": x}, baseline="mean")


def test_cli_explain_writes_the_run_folder_and_names_bad_requests(tmp_path, capsys):
    from keras_mtl import cli, saving

    keras.utils.set_random_seed(10)
    model = mtl.models.shared_bottom(
        {"age": keras.Input((1,), name="age"), "hours": keras.Input((1,), name="hours")},
        [mtl.tasks.Binary("income"), mtl.tasks.Regression("spend")],
        trunk=lambda x: keras.layers.Dense(4, activation="tanh")(keras.layers.Concatenate()([x["age"], x["hours"]])),
    )
    checkpoint = tmp_path / "checkpoints" / "census" / "run1"
    checkpoint.mkdir(parents=True)
    saving.save_model(model, checkpoint / "best.keras")
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"age": np.linspace(-1, 1, 30), "hours": np.linspace(1, -1, 30), "id": range(30)}).to_csv(rows, index=False)
    assert cli.main(["explain", str(checkpoint), "--data", str(rows), "--rows", "12"]) == 0
    printed = capsys.readouterr().out
    assert "income: " in printed and "Wrote" in printed
    summary = json.loads((checkpoint / "explain" / "explanation.json").read_text())
    assert summary["examples"] == 12 and summary["columns"] == ["age", "hours"]
    # A run's log folder: the checkpoint is found through its config.yaml, relative to where it trained.
    run = tmp_path / "logs" / "census" / "run1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: census\noutput:\n  checkpoint_dir: checkpoints\n")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli.main(["explain", str(run), "--data", str(rows), "--tasks", "spend", "--method", "gradient_x_input"]) == 0
    finally:
        os.chdir(cwd)
    assert json.loads((run / "explain" / "explanation.json").read_text())["tasks"] == ["spend"]
    assert cli.main(["explain", str(checkpoint), "--data", str(rows), "--tasks", "nope"]) == 2
    assert "the model has no task 'nope'; its tasks are ['income', 'spend']" in capsys.readouterr().err
    pd.DataFrame({"age": [0.1]}).to_csv(tmp_path / "partial.csv", index=False)
    assert cli.main(["explain", str(checkpoint), "--data", str(tmp_path / "partial.csv")]) == 2
    assert "has no column 'hours', an input of the model" in capsys.readouterr().err
    export = tmp_path / "export" / "1"
    export.mkdir(parents=True)
    (export / "saved_model.pb").write_bytes(b"")
    assert cli.main(["explain", str(export.parent), "--data", str(rows)]) == 2
    assert "is a SavedModel export; explain needs the Keras model" in capsys.readouterr().err


def test_a_dataset_a_dataframe_and_a_dict_explain_alike():
    model, frame = _text_model()
    rows = frame.head(12)
    by_frame = mtl.explain(model, rows)
    columns = {k: rows[k].to_numpy() for k in rows}
    by_dict = mtl.explain(model, columns)
    labels = {"liked": np.zeros(12, "float32"), "stars": np.zeros(12, "float32")}
    dataset = tf.data.Dataset.from_tensor_slices(({k: tf.constant(list(v)) for k, v in columns.items()}, labels)).batch(5)
    by_dataset = mtl.explain(model, dataset)
    for task in by_frame.tasks:
        np.testing.assert_allclose(by_dict.attributions[task], by_frame.attributions[task], atol=1e-7)
        np.testing.assert_allclose(by_dataset.attributions[task], by_frame.attributions[task], atol=1e-7)
    with pytest.raises(RequestError, match="Every input needs the same number of rows \\(at least 1\\)"):
        mtl.explain(model, rows.head(0))
