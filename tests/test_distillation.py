"""Distillation: soft losses against hand-computed values, the label/teacher mix, annealing, precomputed targets."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as mtl
from keras_mtl.distillation import Distillation, anneal, soft_loss
from keras_mtl.tasks import Binary, Multiclass, Multilabel, Regression, Tagging


def _logit(p):
    return np.log(p / (1 - p))


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _bernoulli_kl(q, p):
    return q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_binary_soft_loss_is_the_softened_kl_times_t_squared(temperature):
    teacher, student = np.array([[0.9], [0.2], [0.5]]), np.array([[0.6], [0.3], [0.5]])
    got = soft_loss(Binary("a"), tf.constant(teacher, tf.float32), tf.constant(student, tf.float32), temperature)
    q, p = _sigmoid(_logit(teacher) / temperature), _sigmoid(_logit(student) / temperature)
    want = _bernoulli_kl(q, p)[:, 0] * temperature**2
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    assert got.numpy()[2] == pytest.approx(0.0, abs=1e-7)  # equal outputs cost nothing


def test_multiclass_soft_loss_is_the_softened_kl_times_t_squared():
    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    student = np.array([[0.4, 0.4, 0.2], [0.1, 0.1, 0.8]])
    t = 3.0
    got = soft_loss(Multiclass("c", 3), tf.constant(teacher, tf.float32), tf.constant(student, tf.float32), t)

    def soften(p):
        z = np.exp(np.log(p) / t)
        return z / z.sum(axis=1, keepdims=True)

    q, p = soften(teacher), soften(student)
    want = (q * np.log(q / p)).sum(axis=1) * t * t
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    assert got.numpy()[1] == pytest.approx(0.0, abs=1e-6)


def test_multilabel_soft_loss_sums_the_labels():
    teacher, student = np.array([[0.9, 0.1]]), np.array([[0.5, 0.5]])
    got = soft_loss(Multilabel("m", 2), tf.constant(teacher, tf.float32), tf.constant(student, tf.float32))
    assert float(got[0]) == pytest.approx(_bernoulli_kl(teacher, student).sum(), rel=1e-5)


def test_regression_soft_loss_is_the_tasks_loss_against_the_teacher_and_ignores_temperature():
    task = Regression("r", normalize=False)
    teacher, student = tf.constant([[3.0], [1.0]]), tf.constant([[1.0], [1.0]])
    np.testing.assert_allclose(soft_loss(task, teacher, student, 5.0).numpy(), [4.0, 0.0])


def test_soft_loss_sends_no_gradient_to_the_teacher():
    teacher, student = tf.Variable([[0.8]]), tf.Variable([[0.4]])
    with tf.GradientTape() as tape:
        loss = soft_loss(Binary("a"), teacher, student)
    g_teacher, g_student = tape.gradient(loss, [teacher, student])
    assert g_teacher is None and float(g_student[0, 0]) != 0.0


def test_anneal_moves_linearly_then_stays():
    schedule = anneal(10, start=0.2, end=1.0)
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 5, 10, 50)], [0.2, 0.6, 1.0, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        anneal(0)
    with pytest.raises(ValueError, match="end is a label weight"):
        anneal(5, end=1.5)


# ------------------------------------------------------------- the mixed loss
def _pair(seed=0, student_tasks=None):
    keras.utils.set_random_seed(seed)
    tasks = [Binary("a"), Multiclass("c", 3), Regression("r", normalize=False)]
    teacher = mtl.models.shared_bottom(keras.Input((4,), name="x"), tasks, trunk=mtl.trunks.mlp([16]), name="teacher")
    student = mtl.models.shared_bottom(
        keras.Input((4,), name="x"), student_tasks or tasks, trunk=mtl.trunks.mlp([3]), name="student"
    )
    return teacher, student


def _data(rng, n=32):
    x = rng.normal(size=(n, 4)).astype("float32")
    a = (x[:, 0] > 0).astype("float32")
    a[::3] = -1  # missing labels: the teacher term still counts these rows
    c = np.clip((x[:, 1] + 1.5).astype("int64"), 0, 2)
    r = (x[:, 2] * 2).astype("float32")
    return x, {"a": a, "c": c, "r": r}


def test_training_loss_mixes_label_and_teacher_loss_per_task_as_documented(rng):
    teacher, student = _pair()
    x, y = _data(rng)
    student.compile(optimizer="sgd", distillation=Distillation(teacher, temperature=2.0, label_weight={"a": 0.25, "c": 1.0}))
    pred, soft = student(x), teacher(x)
    plain, _ = student.task_losses(y, pred)
    mixed, counts = student.task_losses(y, pred, x=x, training=True)
    # a: 0.25 label + 0.75 teacher, the teacher term over all 32 rows (11 have no label)
    p, q = pred["a"].numpy()[:, 0], soft["a"].numpy()[:, 0]
    kl = _bernoulli_kl(_sigmoid(_logit(q) / 2), _sigmoid(_logit(p) / 2)).mean() * 4
    assert float(mixed["a"]) == pytest.approx(0.25 * float(plain["a"]) + 0.75 * kl, rel=1e-4)
    assert float(counts["a"]) == 32
    assert float(mixed["c"]) == pytest.approx(float(plain["c"]), rel=1e-6)  # label weight 1: the label loss alone
    # r: not in label_weight, so 0.5 each; its teacher loss is the squared difference
    soft_r = np.mean((soft["r"].numpy() - pred["r"].numpy()) ** 2)
    assert float(mixed["r"]) == pytest.approx(0.5 * float(plain["r"]) + 0.5 * soft_r, rel=1e-4)
    # Not training (evaluate, validation): the label loss alone.
    unmixed, _ = student.task_losses(y, pred, x=x, training=False)
    assert float(unmixed["a"]) == pytest.approx(float(plain["a"]))


def test_annealed_label_weight_follows_the_optimizer_step(rng):
    teacher, student = _pair()
    x, y = _data(rng)
    student.compile(optimizer="sgd", distillation=Distillation(teacher, label_weight=anneal(100), tasks=["a"]))
    student.optimizer.build(student.trainable_variables)
    pred = student(x)
    plain, _ = student.task_losses(y, pred)
    teacher_only = soft_loss(Binary("a"), teacher(x)["a"], pred["a"]).numpy().mean()
    for step, alpha in ((0, 0.0), (25, 0.25), (100, 1.0)):
        student.optimizer.iterations.assign(step)
        mixed, _ = student.task_losses(y, pred, x=x, training=True)
        want = alpha * float(plain["a"]) + (1 - alpha) * teacher_only
        assert float(mixed["a"]) == pytest.approx(want, rel=1e-4), step
        assert float(mixed["c"]) == pytest.approx(float(plain["c"]))  # not distilled


def test_precomputed_teacher_outputs_train_exactly_like_running_the_teacher(rng):
    x, y = _data(rng)
    weights = []
    for precompute in (False, True):
        teacher, student = _pair(seed=3)
        distillation = Distillation(teacher, temperature=2.0, label_weight=0.3)
        student.compile(optimizer=keras.optimizers.SGD(0.1), distillation=distillation)
        if precompute:
            _, labels = distillation.precompute(x, y)
            assert sorted(labels) == ["a", "c", "r", "teacher.a", "teacher.c", "teacher.r"]
            np.testing.assert_allclose(labels["teacher.c"], teacher.predict(x, verbose=0)["c"], rtol=1e-6)
        else:
            labels = y
        student.fit(x, labels, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights.append(student.get_weights())
    for one, other in zip(*weights):
        np.testing.assert_allclose(one, other, rtol=1e-5, atol=1e-6)


def test_dataset_precompute_and_evaluate_ignores_teacher_outputs(rng):
    teacher, student = _pair()
    x, y = _data(rng)
    distillation = Distillation(teacher, tasks=["a", "c"])
    student.compile(optimizer="adam", distillation=distillation)
    ds = distillation.precompute(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    assert set(ds.element_spec[1]) == {"a", "c", "r", "teacher.a", "teacher.c"}
    history = student.fit(ds, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    with_teacher = student.evaluate(ds, verbose=0, return_dict=True)
    without = student.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert with_teacher["a_loss"] == pytest.approx(without["a_loss"], rel=1e-5)


@pytest.mark.slow
def test_single_task_teachers_distil_into_one_student_and_teach_unlabelled_tasks(rng):
    keras.utils.set_random_seed(1)
    n = 512
    x = rng.normal(size=(n, 4)).astype("float32")
    a_true = (x[:, 0] + x[:, 1] > 0).astype("float32")
    teachers = {}
    for name in ("a", "b"):
        teacher = mtl.models.single_task(keras.Input((4,), name="x"), Binary(name), trunk=mtl.trunks.mlp([16]))
        teacher.compile(optimizer=keras.optimizers.Adam(0.05))
        teacher.fit(x, {name: a_true}, epochs=20, batch_size=64, verbose=0)
        teachers[name] = teacher
    student = mtl.models.shared_bottom(keras.Input((4,), name="x"), [Binary("a"), Binary("b")], trunk=mtl.trunks.mlp([8]))
    student.compile(optimizer=keras.optimizers.Adam(0.05), distillation=Distillation(teachers, label_weight=0.5))
    # b has no labels at all: everything it learns comes from its teacher.
    x_, y = student.distillation.precompute(x, {"a": a_true, "b": np.full(n, -1.0, "float32")})
    student.fit(x_, y, epochs=20, batch_size=64, verbose=0)
    b = student.predict(x, verbose=0)["b"][:, 0]
    assert np.mean((b > 0.5) == a_true) > 0.9


def test_gradient_weighting_methods_train_with_distillation(rng):
    teacher, student = _pair()
    x, y = _data(rng)
    student.compile(optimizer="sgd", weighting="pcgrad", distillation=Distillation(teacher, label_weight=0.0))
    history = student.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["a_loss"][0])


# ---------------------------------------------------------------- bad inputs
def test_bad_distillations_are_named():
    teacher, student = _pair()
    with pytest.raises(ValueError, match=r"task\(s\) \['z'\] the student does not have"):
        student.compile(distillation=Distillation(teacher, tasks=["z"]))
    wrong = mtl.models.shared_bottom(keras.Input((4,)), [Multiclass("c", 5)])
    with pytest.raises(ValueError, match=r"gives task 'c' outputs of shape \(None, 5\); the student's 'c' output has shape \(None, 3\)"):
        student.compile(distillation=Distillation({"c": wrong}))
    other = mtl.models.shared_bottom(keras.Input((4,)), [Binary("q"), Binary("w")])
    with pytest.raises(ValueError, match=r"outputs \['q', 'w'\], none named 'a'"):
        student.compile(distillation=Distillation({"a": other}))
    with pytest.raises(ValueError, match="no teacher output is named like a student task"):
        student.compile(distillation=Distillation(other))
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        Distillation(teacher, temperature=0)
    with pytest.raises(ValueError, match=r"label_weight\['a'\] must be a number in \[0, 1\]"):
        Distillation(teacher, label_weight={"a": 2.0})
    with pytest.raises(ValueError, match=r"label_weight names task\(s\) \['b'\]"):
        student.compile(distillation=Distillation(teacher, label_weight={"b": 0.2}))
    with pytest.raises(TypeError, match=r"teachers must be Keras models; got \{'a': 'str'\}"):
        Distillation({"a": "teacher.keras"})
    with pytest.raises(ValueError, match="name the tasks"):
        Distillation(None)
    with pytest.raises(TypeError, match="takes a keras_mtl.distillation.Distillation"):
        student.compile(distillation={"a": teacher})
    spend = mtl.models.shared_bottom(keras.Input((4,)), [mtl.tasks.ZeroInflatedLognormal("s")])
    with pytest.raises(ValueError, match=r"task 's' \(ZeroInflatedLognormal\) cannot be distilled"):
        spend.compile(distillation=Distillation(None, tasks=["s"]))
    with pytest.raises(ValueError, match=r"Task 't' \(Tagging\) cannot be distilled"):
        soft_loss(Tagging("t", 4), tf.zeros((1, 3, 4)), tf.zeros((1, 3, 4)))


def test_a_batch_without_teacher_outputs_is_named(rng):
    _, student = _pair()
    x, y = _data(rng)
    student.compile(optimizer="sgd", distillation=Distillation(None, tasks=["a"]))
    with pytest.raises(ValueError, match=r"no teacher output for task 'a' \(label key 'teacher.a'\)"):
        student.fit(x, y, epochs=1, verbose=0)


def test_precompute_before_compile_uses_every_teacher_output(rng):
    teacher, _ = _pair()
    x, y = _data(rng)
    distillation = Distillation(teacher)
    ds = distillation.precompute(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    assert set(ds.element_spec[1]) == {"a", "c", "r", "teacher.a", "teacher.c", "teacher.r"}
    first = next(iter(ds))[1]
    np.testing.assert_allclose(first["teacher.a"], teacher(x[:8])["a"], rtol=1e-6)
    both = mtl.models.shared_bottom(keras.Input((4,)), [Binary("q"), Binary("w")])
    with pytest.raises(ValueError, match=r"the teacher of task 'a' has outputs \['q', 'w'\], none named 'a'"):
        Distillation({"a": both}).precompute(x, y)


def test_a_teacher_that_cannot_read_the_encoded_batch_is_named():
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"city": rng.choice(["a", "b", "c"], 200), "n": rng.normal(size=200)})
    frame["y"] = (frame.n > 0).astype("float32")
    task = [Binary("y")]
    teacher_data = mtl.data.from_dataframe(frame, task, echo=None)
    teacher = mtl.models.shared_bottom(teacher_data.inputs, task, mtl.trunks.tabular(teacher_data.feature_space, [4]))
    student_data = mtl.data.from_dataframe(frame, task, echo=None)
    student = mtl.models.shared_bottom(student_data.inputs, task, mtl.trunks.tabular(student_data.feature_space, [2]))
    student.compile(optimizer="adam", distillation=Distillation(teacher))
    with pytest.raises(ValueError, match=r"the teacher '.*' of task 'y' cannot read the training batch: it takes \['city', 'n'\]"):
        student.fit(student_data.encoded(student).train, epochs=1, verbose=0)
    student.fit(student_data.train, epochs=1, verbose=0)  # raw features: the teacher encodes them itself
