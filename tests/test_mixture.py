"""mixture(): masks, sampling proportions, epochs, the clear errors, and training through it."""

import math
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.data import sampling
from keras_mtl.data.mixing import choice_stream, concatenate, mixture

ROOT = Path(__file__).resolve().parents[1]

# chi-square 0.999 quantiles: a correct sampler fails one check in a thousand
# seeds; the seeds here are fixed, so the checks are deterministic.
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27}


def _tasks():
    return [
        mtl.tasks.Binary("click"),
        mtl.tasks.Multiclass("topic", num_classes=4),
        mtl.tasks.Regression("dwell"),
        mtl.tasks.Multilabel("tags", num_labels=3),
    ]


# Which tasks each source labels: every task is labelled by some source and
# missing from some other, and one source labels a single task.
LABELLED = {
    "s0": ("click", "topic"),
    "s1": ("topic", "dwell", "tags"),
    "s2": ("click",),
    "s3": ("dwell", "tags"),
}


def _source(index: int, n: int, labelled) -> tf.data.Dataset:
    """Examples whose labels are a known function of (source, row)."""
    rows = np.arange(n)
    values = {
        "click": (rows % 2).astype(np.int64),
        "topic": ((rows + index) % 4).astype(np.int64),
        "dwell": (rows * 0.5 + index).astype(np.float32),
        "tags": np.stack([(rows + k + index) % 2 for k in range(3)], axis=1).astype(np.int64),
    }
    features = {"src": np.full(n, index, np.int64), "row": rows.astype(np.int64), "x": rows.astype(np.float32)}
    return tf.data.Dataset.from_tensor_slices((features, {k: values[k] for k in labelled}))


def _expected(index: int, row: int, task: str):
    return {
        "click": row % 2,
        "topic": (row + index) % 4,
        "dwell": row * 0.5 + index,
        "tags": [(row + k + index) % 2 for k in range(3)],
    }[task]


def _sources(n=50):
    return {name: _source(i, n, LABELLED[name]) for i, name in enumerate(LABELLED)}


def _check_masks(batches):
    names = list(LABELLED)
    seen = set()
    for x, y in batches:
        for j, (src, row) in enumerate(zip(x["src"].numpy(), x["row"].numpy())):
            labelled = LABELLED[names[src]]
            seen.add(names[src])
            for task in ("click", "topic", "dwell", "tags"):
                value = y[task].numpy()[j]
                if task in labelled:
                    np.testing.assert_allclose(value, _expected(src, row, task))
                elif task == "dwell":
                    assert np.isnan(value), (names[src], task, value)
                else:
                    np.testing.assert_array_equal(value, np.full(np.shape(value), -1))
    return seen


def test_masks_are_correct_for_every_source_and_task():
    mix = mixture(_sources(), _tasks(), sampling="uniform", batch_size=16, seed=3)
    x, y = next(iter(mix))
    # Markers in each task's label dtype: -1 for integer labels, NaN for floats.
    assert {k: v.dtype for k, v in y.items()} == {
        "click": tf.int64, "topic": tf.int64, "dwell": tf.float32, "tags": tf.int64
    }
    assert y["tags"].shape == (16, 3)
    assert _check_masks(mix) == set(LABELLED)


def test_concatenate_gives_every_example_once_with_masks():
    ds = concatenate(_sources(n=7), _tasks(), batch_size=5)
    pairs = [(int(s), int(r)) for x, _ in ds for s, r in zip(x["src"], x["row"])]
    assert pairs == [(i, r) for i in range(4) for r in range(7)]
    assert _check_masks(ds) == set(LABELLED)


def test_model_masks_what_the_mixture_marks():
    tasks = [mtl.tasks.Binary("click"), mtl.tasks.Regression("dwell")]
    sources = {"s2": _source(2, 40, ["click"]), "s3": _source(3, 40, ["dwell"])}
    mix = mixture(sources, tasks, batch_size=20, seed=0)
    x, y = next(iter(mix))
    model = mtl.models.shared_bottom({"x": keras.Input((), name="x")}, tasks, trunk=mtl.trunks.mlp([4]))
    model.compile(optimizer="sgd")
    logs = model.evaluate({"x": x["x"]}, y, verbose=0, return_dict=True)
    # The task loss is the mean over the labelled rows only.
    pred = model.predict({"x": x["x"]}, verbose=0)
    labelled = y["dwell"].numpy() == y["dwell"].numpy()
    expected = np.mean((pred["dwell"][labelled, 0] - y["dwell"].numpy()[labelled]) ** 2)
    np.testing.assert_allclose(logs["dwell_loss"], expected, rtol=1e-5)


def test_all_masked_batches_give_zero_task_loss():
    tasks = [mtl.tasks.Binary("click"), mtl.tasks.Regression("dwell")]
    sources = {"s2": _source(2, 40, ["click"]), "s3": _source(3, 40, ["dwell"])}
    # Weight 0: no example ever comes from s3, so every dwell label is missing.
    mix = mixture(sources, tasks, sampling={"s2": 1.0, "s3": 0.0}, batch_size=16, seed=0)
    for x, y in mix:
        assert np.isnan(y["dwell"].numpy()).all()
    model = mtl.models.shared_bottom({"x": keras.Input((), name="x")}, tasks, trunk=mtl.trunks.mlp([4]))
    model.compile(optimizer="sgd")
    logs = model.evaluate(mix.map(lambda x, y: ({"x": x["x"]}, y)), verbose=0, return_dict=True)
    assert logs["dwell_loss"] == 0.0
    assert np.isfinite(logs["loss"]) and logs["click_loss"] > 0


# ------------------------------------------------------------------ sampling
SIZES = {"a": 600, "b": 300, "c": 100}


def _counting_sources(sizes=SIZES):
    return {
        name: tf.data.Dataset.from_tensor_slices(
            ({"src": np.full(n, i, np.int64)}, {"y": np.zeros(n, np.float32)})
        )
        for i, (name, n) in enumerate(sizes.items())
    }


def _draws(mix) -> np.ndarray:
    return np.concatenate([x["src"].numpy() for x, _ in mix])


def _chi2(counts: np.ndarray, p: np.ndarray) -> float:
    expected = counts.sum() * p
    keep = expected > 0
    assert counts[~keep].sum() == 0, "drew a source with probability 0"
    return float((((counts - expected) ** 2)[keep] / expected[keep]).sum())


@pytest.mark.parametrize(
    "strategy, p",
    [
        ("proportional", [0.6, 0.3, 0.1]),
        ("uniform", [1 / 3, 1 / 3, 1 / 3]),
        (sampling.Temperature(2.0), np.sqrt([600, 300, 100]) / np.sqrt([600, 300, 100]).sum()),
        ({"a": 1.0, "b": 0.0, "c": 3.0}, [0.25, 0.0, 0.75]),
    ],
    ids=["proportional", "uniform", "temperature", "weights"],
)
def test_sampling_proportions_hold(strategy, p):
    tasks = [mtl.tasks.Regression("y")]
    mix = mixture(_counting_sources(), tasks, sampling=strategy, batch_size=100, seed=7,
                  examples_per_epoch=5000)
    counts = np.bincount(_draws(mix), minlength=3)
    assert counts.sum() == 5000
    p = np.asarray(p)
    assert _chi2(counts, p) < CHI2_999[int((p > 0).sum()) - 1]
    # And each source's share within 4 binomial standard deviations.
    sd = np.sqrt(5000 * p * (1 - p))
    assert np.all(np.abs(counts - 5000 * p) <= 4 * sd + 1e-9)


def test_annealed_proportions_follow_the_schedule_per_epoch():
    tasks = [mtl.tasks.Regression("y")]
    sizes = {"big": 900, "small": 100}
    sampler = sampling.Annealed(epochs=3)
    mix = mixture(_counting_sources(sizes), tasks, sampling=sampler, batch_size=100, seed=1,
                  examples_per_epoch=4000)
    assert len(mix) == 3 * 40  # the dataset spans the sampler's 3 epochs
    draws = _draws(mix).reshape(3, 4000)
    for epoch in range(3):
        p = np.array(list(sampler.probabilities(sizes, epoch).values()))
        counts = np.bincount(draws[epoch], minlength=2)
        assert _chi2(counts, p) < CHI2_999[1], (epoch, counts, p)
    # alpha 1 -> 0.6 -> 0.2: the small source's share rises 0.1 -> 0.2 -> 0.39.
    shares = (draws == 1).mean(axis=1)
    assert shares[0] < shares[1] < shares[2]


def test_annealing_schedule_values_at_known_epochs():
    s = sampling.Annealed(epochs=5)
    assert [s.alpha(e) for e in range(5)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert s.alpha(7) == pytest.approx(0.2)  # past the last epoch alpha stays
    assert sampling.Annealed(epochs=1).alpha(0) == 1.0
    sizes = {"a": 10000, "b": 100}
    assert s.probabilities(sizes, 0) == pytest.approx({"a": 10000 / 10100, "b": 100 / 10100})
    # Last epoch: p ∝ n^0.2, i.e. 10000^0.2 = 6.31 vs 100^0.2 = 2.51.
    q = np.array([10000, 100]) ** 0.2
    assert list(s.probabilities(sizes, 4).values()) == pytest.approx(list(q / q.sum()))
    # Stickland & Murray, E = 3: alpha = 1 - 0.8 (e - 1) / 2 for e = 1, 2, 3.
    assert [sampling.Annealed(3).alpha(e) for e in range(3)] == pytest.approx([1.0, 0.6, 0.2])
    schedule = s.schedule(sizes, 5)
    assert schedule.shape == (5, 2) and np.allclose(schedule.sum(axis=1), 1.0)
    assert np.all(np.diff(schedule[:, 1]) > 0)


def test_sampler_distributions():
    sizes = {"a": 900, "b": 100}
    assert sampling.Temperature(1.0).probabilities(sizes) == pytest.approx(sampling.Proportional().probabilities(sizes))
    assert sampling.Temperature(1e6).probabilities(sizes)["b"] == pytest.approx(0.5, abs=1e-4)
    assert sampling.Uniform().probabilities({"a": 1, "b": 2, "c": 3}) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert sampling.get({"a": 1, "b": 1}).probabilities(sizes) == {"a": 0.5, "b": 0.5}
    rebuilt = type(s := sampling.Annealed(4, 0.5))(**s.get_config())
    assert rebuilt.get_config() == {"epochs": 4, "final_alpha": 0.5}


def test_sampler_errors():
    with pytest.raises(ValueError, match="Annealed\\(epochs=E\\)"):
        sampling.get("annealed")
    with pytest.raises(ValueError, match="Unknown sampling 'random'"):
        sampling.get("random")
    with pytest.raises(ValueError, match="temperature must be"):
        sampling.Temperature(0)
    with pytest.raises(ValueError, match="at least one weight must be > 0"):
        sampling.Weights({"a": 0})
    with pytest.raises(ValueError, match="must name exactly the sources"):
        sampling.Weights({"a": 1}).probabilities({"a": 1, "b": 1})
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        sampling.Annealed(0)


def test_each_pass_draws_anew_and_a_seed_reproduces():
    table = np.array([[0.5, 0.5]])
    stream = choice_stream(table, per_epoch=2000, total=2000, seed=5)
    first, second = [np.array([int(c) for c in stream]) for _ in range(2)]
    again = np.array([int(c) for c in choice_stream(table, per_epoch=2000, total=2000, seed=5)])
    assert (first != second).mean() > 0.3
    np.testing.assert_array_equal(first, again)


# ------------------------------------------------------------------- epochs
def test_an_epoch_is_the_sum_of_the_sizes_in_full_batches():
    tasks = [mtl.tasks.Regression("y")]
    mix = mixture(_counting_sources(), tasks, batch_size=64, seed=0)
    assert len(mix) == math.ceil(1000 / 64) == 16
    assert all(x["src"].shape == (64,) for x, _ in mix)
    assert len(mixture(_counting_sources(), tasks, batch_size=64, epochs=3)) == 48
    assert len(mixture(_counting_sources(), tasks, batch_size=10, examples_per_epoch=95)) == 10


@pytest.mark.slow
def test_fit_with_annealing_reads_one_pass_across_epochs():
    tasks = [mtl.tasks.Binary("click"), mtl.tasks.Regression("dwell")]
    sources = {"s2": _source(2, 300, ["click"]), "s3": _source(3, 100, ["dwell"])}
    model = mtl.models.shared_bottom({"x": keras.Input((), name="x")}, tasks, trunk=mtl.trunks.mlp([4]))
    model.compile(optimizer="adam")
    mix = mixture(sources, tasks, sampling=sampling.Annealed(epochs=2), batch_size=50, seed=0, inputs=model)
    assert len(mix) == 2 * 8
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Your input ran out of data" is a UserWarning
        warnings.filterwarnings("ignore", "`shuffle=True` was passed")
        history = model.fit(mix, epochs=2, steps_per_epoch=len(mix) // 2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_sources_can_carry_sample_weights():
    tasks = [mtl.tasks.Binary("click"), mtl.tasks.Regression("dwell")]
    weighted = _source(2, 20, ["click"]).map(lambda x, y: (x, y, {"click": tf.constant(3.0)}))
    sources = {"w": weighted, "plain": _source(3, 20, ["dwell"])}
    x, y, w = next(iter(mixture(sources, tasks, sampling="uniform", batch_size=40, seed=0)))
    from_w = x["src"].numpy() == 2
    assert sorted(w) == ["click", "dwell"]
    np.testing.assert_array_equal(w["click"].numpy(), np.where(from_w, 3.0, 1.0))
    np.testing.assert_array_equal(w["dwell"].numpy(), np.ones(40))


# ------------------------------------------------------------------- features
def _text_source(n, label, extra=None, shape=()):
    features = {"text": np.array(["w%d" % i for i in range(n)]).reshape((n, *shape))}
    if extra:
        features.update(extra)
    return tf.data.Dataset.from_tensor_slices((features, {label: np.zeros(n, np.int64)}))


def test_model_inputs_pick_features_and_defaults_fill_the_missing_ones():
    tasks = [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")]
    inputs = {"text": keras.Input((), dtype="string", name="text"), "year": keras.Input((), dtype="int64", name="year")}
    sources = {
        "with_year": _text_source(4, "a", {"year": np.arange(2000, 2004), "noise": np.zeros(4, np.float32)}),
        "without": _text_source(4, "b"),
    }
    with pytest.raises(ValueError, match="Source 'without' has no feature\\(s\\) \\['year'\\].*defaults="):
        mixture(sources, tasks, inputs=inputs)
    x, y = next(iter(concatenate(sources, tasks, inputs=inputs, defaults={"year": 0}, batch_size=8)))
    assert sorted(x) == ["text", "year"]  # "noise" is not a model input: dropped
    assert x["year"].numpy().tolist() == [2000, 2001, 2002, 2003, 0, 0, 0, 0]


def test_different_feature_sets_without_model_inputs_are_an_error():
    tasks = [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")]
    sources = {"one": _text_source(3, "a", {"year": np.arange(3)}), "two": _text_source(3, "b")}
    with pytest.raises(ValueError, match="Sources have different features.*lacks \\['year'\\].*inputs=model.input"):
        mixture(sources, tasks)
    # A declared default is enough when the sources are the whole story.
    x, _ = next(iter(concatenate(sources, tasks, defaults={"year": -1}, batch_size=6)))
    assert x["year"].numpy().tolist() == [0, 1, 2, -1, -1, -1]


def test_feature_dtype_and_shape_mismatches_are_errors():
    tasks = [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")]
    numbers = tf.data.Dataset.from_tensor_slices(({"text": np.arange(3)}, {"b": np.zeros(3, np.int64)}))
    with pytest.raises(ValueError, match="Feature 'text' is int64 in source 'two' but string in source 'one'"):
        mixture({"one": _text_source(3, "a"), "two": numbers}, tasks)
    inputs = {"text": keras.Input((), dtype="string", name="text")}
    with pytest.raises(ValueError, match="feature 'text' is int64 but the model input is string"):
        mixture({"one": _text_source(3, "a"), "two": numbers}, tasks, inputs=inputs)
    wide = _text_source(3, "b", shape=()).map(lambda x, y: ({"text": tf.stack([x["text"]] * 2)}, y))
    with pytest.raises(ValueError, match="Feature 'text' has shape \\(2,\\) in source 'two'"):
        mixture({"one": _text_source(3, "a"), "two": wide}, tasks)


def test_trailing_unit_axes_are_reshaped_to_one_shape():
    tasks = [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")]
    sources = {"flat": _text_source(2, "a"), "column": _text_source(2, "b", shape=(1,))}
    x, _ = next(iter(concatenate(sources, tasks, batch_size=4)))
    assert x["text"].shape == (4,)
    inputs = {"text": keras.Input((1,), dtype="string", name="text")}
    x, _ = next(iter(concatenate(sources, tasks, batch_size=4, inputs=inputs)))
    assert x["text"].shape == (4, 1)


# --------------------------------------------------------------------- errors
def test_a_task_no_source_labels_is_an_error():
    tasks = [mtl.tasks.Binary("click"), mtl.tasks.Regression("dwell")]
    with pytest.raises(ValueError, match="No source labels task 'dwell'"):
        mixture({"s2": _source(2, 10, ["click"])}, tasks)


def test_a_source_labelling_an_unknown_task_is_an_error():
    with pytest.raises(ValueError, match="Source 's0' labels \\['topic'\\], which no task reads"):
        mixture({"s0": _source(0, 10, ["click", "topic"])}, [mtl.tasks.Binary("click")])


def test_empty_batched_infinite_and_malformed_sources_are_errors():
    tasks = [mtl.tasks.Binary("click")]
    ok = _source(2, 10, ["click"])
    with pytest.raises(ValueError, match="Source 'empty' is empty"):
        mixture({"ok": ok, "empty": ok.take(0)}, tasks)
    with pytest.raises(ValueError, match="Source 'empty' is empty"):
        mixture({"ok": ok, "empty": ok.filter(lambda x, y: x["row"] < 0)}, tasks)
    with pytest.raises(ValueError, match="looks batched.*unbatch\\(\\)"):
        mixture({"b": ok.batch(4)}, tasks)
    with pytest.raises(ValueError, match="is infinite.*sizes="):
        mixture({"r": ok.repeat()}, tasks)
    assert len(mixture({"r": ok.repeat()}, tasks, sizes={"r": 10}, batch_size=5)) == 2
    with pytest.raises(ValueError, match="must yield \\(features, labels\\)"):
        mixture({"x": tf.data.Dataset.range(3)}, tasks)
    image_only = tf.data.Dataset.from_tensor_slices((np.zeros((3, 2)), {"click": [0, 1, 0]}))
    with pytest.raises(ValueError, match="features must be a dict"):
        mixture({"x": image_only}, tasks)
    with pytest.raises(ValueError, match="non-empty dict"):
        mixture({}, tasks)
    with pytest.raises(ValueError, match="sizes names unknown source"):
        mixture({"ok": ok}, tasks, sizes={"other": 3})
    with pytest.raises(ValueError, match="Invalid source name"):
        mixture({"bad name": ok}, tasks)


def test_label_dtypes_are_unified_so_markers_fit():
    tasks = [mtl.tasks.Binary("a"), mtl.tasks.Regression("r")]
    ints = tf.data.Dataset.from_tensor_slices(({"x": [1.0]}, {"a": [1], "r": [3]}))  # int32 regression target
    floats = tf.data.Dataset.from_tensor_slices(({"x": [2.0]}, {"a": [0.0]}))
    x, y = next(iter(concatenate({"i": ints, "f": floats}, tasks, batch_size=2)))
    assert y["a"].dtype == tf.float32 and y["r"].dtype == tf.float32
    assert y["a"].numpy().tolist() == [1.0, 0.0]
    assert y["r"].numpy()[0] == 3.0 and np.isnan(y["r"].numpy()[1])


# -------------------------------------------------------------------- example
@pytest.mark.slow
def test_news_sentiment_topic_example_runs_quick():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "news_sentiment_topic.py"), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sentiment_accuracy" in result.stdout and "topic_accuracy" in result.stdout
    assert "raw-string predictions" in result.stdout


@pytest.mark.slow
def test_fit_on_a_mixture_under_mirrored_strategy():
    tasks = [mtl.tasks.Binary("click"), mtl.tasks.Regression("dwell")]
    sources = {"s2": _source(2, 64, ["click"]), "s3": _source(3, 64, ["dwell"])}
    # No collectives: strategies created earlier in this process hand out the
    # same collective keys (see tests/test_architectures.py).
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        model = mtl.models.shared_bottom({"x": keras.Input((), name="x")}, tasks, trunk=mtl.trunks.mlp([4]))
        model.compile(optimizer="sgd")
    mix = mixture(sources, tasks, batch_size=16, seed=0, inputs=model)
    history = model.fit(mix, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["dwell_loss"]).all()
