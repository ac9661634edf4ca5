"""Task types: heads, losses (masked means), default metrics, missing labels, validation."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mtl import _masking as masking, tasks


def loss_of(task, y, y_pred, sample_weight=None):
    y_pred = tf.constant(y_pred, tf.float32)
    labels, weights = task.prepare(tf.constant(y), y_pred, sample_weight)
    mean, count = masking.masked_mean(task.unit_losses(labels, y_pred), weights)
    return float(mean), float(count)


def bce(y, p):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_binary_head_loss_and_metrics():
    t = tasks.Binary("income")
    out = t.build_head(keras.Input((4,)))
    assert out.shape == (None, 1)
    assert [m.name for m in t.metrics()] == ["auc", "accuracy"]
    loss, count = loss_of(t, np.array([1.0, 0.0, -1.0, np.nan]), [[0.9], [0.2], [0.5], [0.7]])
    assert count == 2
    assert loss == pytest.approx((bce(1, 0.9) + bce(0, 0.2)) / 2, rel=1e-5)


@pytest.mark.parametrize("task", [tasks.Binary("b"), tasks.Multilabel("m", num_labels=1)])
def test_sigmoid_outputs_score_their_logits_not_clipped_probabilities(task):
    # Keras' sigmoid output carries its logits; the loss reads them, as plain
    # Keras does: softplus(40) = 40 for a confident wrong guess, where the
    # clipped probability would give about 16.
    logits = tf.constant([[40.0], [-3.0], [0.0]])
    y_pred = keras.activations.sigmoid(logits)
    labels, weights = task.prepare(tf.constant([0.0, 1.0, -1.0]), y_pred)
    unit = task.unit_losses(labels, y_pred).numpy().ravel()
    assert unit[:2] == pytest.approx([40.0, math.log1p(math.exp(3.0))], rel=1e-5)
    mean, count = masking.masked_mean(task.unit_losses(labels, y_pred), weights)
    assert float(count) == 2 and float(mean) == pytest.approx((40.0 + math.log1p(math.exp(3.0))) / 2, rel=1e-5)
    # Probabilities without logits (another activation, a user's output) still clip, at 1 - 1e-7 in float32.
    plain = tf.constant(y_pred.numpy())
    clipped = -math.log(1 - float(np.float32(1 - 1e-7)))
    assert float(task.unit_losses(labels, plain)[0, 0]) == pytest.approx(clipped, rel=1e-5) and clipped < 17


def test_missing_markers_are_masked_in_a_compiled_step():
    # Grappler must not fold the NaN test (y == y) away: NaN and -1 count nowhere.
    t = tasks.Binary("b")

    @tf.function
    def masked(y):
        return t.mask_labels(y)

    y, present = masked(tf.constant([1.0, -1.0, float("nan"), 0.0]))
    assert y.numpy().tolist() == [1.0, 0.0, 0.0, 0.0]
    assert present.numpy().tolist() == [True, False, False, True]


def test_binary_integer_labels_use_minus_one_as_missing():
    loss, count = loss_of(tasks.Binary("b"), np.array([1, -1], np.int64), [[0.6], [0.1]])
    assert count == 1 and loss == pytest.approx(bce(1, 0.6), rel=1e-5)


def test_all_masked_batch_gives_zero_not_nan():
    for t, y, p in [
        (tasks.Binary("b"), np.array([np.nan, -1.0]), [[0.5], [0.5]]),
        (tasks.Multiclass("m", num_classes=3), np.array([-1, -1]), [[0.2, 0.3, 0.5]] * 2),
        (tasks.Regression("r"), np.array([np.nan, np.nan]), [[1.0], [2.0]]),
    ]:
        loss, count = loss_of(t, y, p)
        assert (loss, count) == (0.0, 0.0), t


def test_multiclass_sparse_labels_and_missing():
    t = tasks.Multiclass("topic", num_classes=3)
    assert t.build_head(keras.Input((4,))).shape == (None, 3)
    assert [m.name for m in t.metrics()] == ["accuracy"]
    p = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]
    loss, count = loss_of(t, np.array([0, 2, -1]), p)
    assert count == 2
    assert loss == pytest.approx(-(math.log(0.7) + math.log(0.8)) / 2, rel=1e-5)


def test_multilabel_masks_each_label_separately():
    t = tasks.Multilabel("tags", num_labels=2)
    p = [[0.8, 0.3], [0.4, 0.9]]
    loss, count = loss_of(t, np.array([[1.0, -1.0], [np.nan, 1.0]]), p)
    assert count == 2
    assert loss == pytest.approx((bce(1, 0.8) + bce(1, 0.9)) / 2, rel=1e-5)
    assert [m.name for m in t.metrics()] == ["auc", "accuracy"]


def test_regression_nan_is_missing_but_minus_one_is_a_value():
    t = tasks.Regression("y")
    loss, count = loss_of(t, np.array([-1.0, np.nan, 2.0]), [[0.0], [5.0], [1.0]])
    assert count == 2
    assert loss == pytest.approx((1.0 + 1.0) / 2)
    assert [m.name for m in t.metrics()] == ["mae", "rmse"]


def test_tagging_masks_padding_tokens():
    t = tasks.Tagging("ner", num_tags=2)
    assert t.build_head(keras.Input((5, 8))).shape == (None, 5, 2)
    p = [[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]]
    loss, count = loss_of(t, np.array([[0, 1, -1]]), p)
    assert count == 2
    assert loss == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, rel=1e-5)


def test_sample_weights_multiply_the_mask():
    t = tasks.Binary("b")
    loss, count = loss_of(
        t, np.array([1.0, 0.0, -1.0]), [[0.9], [0.2], [0.5]], tf.constant([3.0, 1.0, 5.0])
    )
    assert count == 4.0
    assert loss == pytest.approx((3 * bce(1, 0.9) + bce(0, 0.2)) / 4, rel=1e-5)


def test_custom_loss_and_metrics():
    t = tasks.Regression("y", loss=keras.losses.Huber(delta=1.0), metrics=["mae"])
    loss, _ = loss_of(t, np.array([0.0, 3.0]), [[0.5], [0.0]])
    assert loss == pytest.approx((0.5 * 0.25 + (3.0 - 0.5)) / 2, rel=1e-5)
    assert [m.name for m in t.metrics()] == ["mean_absolute_error"]


@pytest.mark.parametrize("bad", ["", "1abc", "has space", "a/b", "../x", "x" * 65, None, 3])
def test_invalid_task_names_are_rejected(bad):
    with pytest.raises(ValueError, match="Invalid task name"):
        tasks.Binary(bad)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: tasks.Binary("a", weight=-1), "weight must be a finite number >= 0"),
        (lambda: tasks.Binary("a", weight=float("nan")), "weight must be"),
        (lambda: tasks.Multiclass("a", num_classes=1), "num_classes must be >= 2"),
        (lambda: tasks.Multilabel("a", num_labels=0), "num_labels must be >= 1"),
        (lambda: tasks.Tagging("a", num_tags=1), "num_tags must be >= 2"),
        (lambda: tasks.Regression("a", units=0), "units must be >= 1"),
    ],
)
def test_bad_task_arguments_name_the_task(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "'a'" in str(info.value)


def test_duplicate_and_empty_task_lists():
    with pytest.raises(ValueError, match="Duplicate task name 'a'"):
        tasks.check_unique([tasks.Binary("a"), tasks.Regression("a")])
    with pytest.raises(ValueError, match="At least one task"):
        tasks.check_unique([])
    with pytest.raises(ValueError, match=r"Task names 'a' and 'val_a' clash in the logs"):
        tasks.check_unique([tasks.Binary("val_a"), tasks.Binary("a")])
    assert len(tasks.check_unique([tasks.Binary("val_a"), tasks.Binary("b")])) == 2


@pytest.mark.parametrize(
    "task",
    [
        tasks.Binary("a", weight=0.5, tower=[4]),
        tasks.Multiclass("b", num_classes=4, label="topic"),
        tasks.Multilabel("c", num_labels=3),
        tasks.Regression("d", units=2, loss="huber", metrics=["mae"]),
        tasks.Tagging("e", num_tags=5),
    ],
)
def test_task_config_round_trip(task):
    config = keras.saving.serialize_keras_object(task)
    again = keras.saving.deserialize_keras_object(config)
    assert again == task and again is not task


@pytest.mark.slow
def test_class_id_out_of_range_names_the_task():
    import keras_mtl as mtl

    model = mtl.models.shared_bottom(keras.Input((3,)), [tasks.Multiclass("topic", num_classes=3)])
    # XLA drops Assert ops: the in-graph backstop needs the step un-compiled.
    model.compile(optimizer="sgd", jit_compile=False)
    x = np.ones((8, 3), "float32")

    def batches(y):  # a tf.data pipeline: labels only the step itself can see
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"topic\W*: class id out of range; valid ids are 0\.\.2"):
        model.fit(batches(np.array([0, 1, 2, 7, 0, 1, 2, 1])), verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"topic\W*: class id out of range.*smallest and largest label in the batch.*-3"):
        model.fit(batches(np.array([0, 1, 2, -3, 0, 1, 2, 1])), verbose=0)
    model.fit(batches(np.array([0, 1, 2, -1, 0, 1, 2, 1])), verbose=0)  # -1 is the missing marker
    # In-memory labels are checked before any graph: a plain ValueError naming the row.
    with pytest.raises(ValueError, match=r"Task 'topic' \(label 'topic'\) in the labels passed to fit: class id 7 at row 3"):
        model.fit(x, np.array([0, 1, 2, 7, 0, 1, 2, 1]), verbose=0)


def test_focal_loss_for_rare_positives_is_a_loss_name_away():
    # Lin et al. 2017, gamma = 2, no class balancing: -(1 - p_t)^2 log(p_t), on labelled examples only.
    import keras_mtl as mtl

    task = mtl.tasks.Binary("conversion", loss="binary_focal_crossentropy")
    model = mtl.models.shared_bottom(keras.Input((2,)), [task])
    y = np.array([1.0, 0.0, np.nan], "float32")
    p = tf.constant([[0.8], [0.3], [0.5]])
    losses, counts = model.task_losses({"conversion": y}, {"conversion": p})
    expected = (0.2**2 * -np.log(0.8) + 0.3**2 * -np.log(0.7)) / 2
    assert float(losses["conversion"]) == pytest.approx(expected, rel=1e-4)
    assert float(counts["conversion"]) == 2


def test_logged_aucs_rank_probabilities_below_keras_default_bucket():
    # Keras' AUC() buckets probabilities by 1/200: 0.001 and 0.004 share a bucket and
    # read as a tie (AUC 0.5), though every positive outranks every negative (AUC 1).
    y = np.array([0, 0, 1, 1], "float32")
    p = np.array([0.001, 0.001, 0.004, 0.004], "float32")
    assert float(keras.metrics.AUC()(y, p)) == pytest.approx(0.5)
    binary_auc = tasks.Binary("a").metrics()[0]
    assert binary_auc.num_thresholds == 2000 and float(binary_auc(y, p)) == pytest.approx(1.0)
    multilabel_auc = tasks.Multilabel("m", num_labels=2).metrics()[0]
    assert float(multilabel_auc(np.stack([y, y], 1), np.stack([p, p], 1))) == pytest.approx(1.0)
    ziln_auc = [m for m in tasks.get("zero_inflated_lognormal", "ltv").metrics() if m.name == "positive_auc"][0]
    assert ziln_auc.num_thresholds == 2000
