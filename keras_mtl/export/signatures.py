"""What the exported model answers: its signatures, their inputs, and the serving answer.

Every signature is defined here once. `saved_model` traces these functions
into the SavedModel and `verify` calls the same ones on the Keras model, so
"the export answers like the model" is checked against one definition of the
answer.

| signature            | inputs                                   | outputs                       |
|----------------------|------------------------------------------|-------------------------------|
| `serving_default`    | raw features, one tensor per model input | every task (+ derived)        |
| `predict_<task>`     | the same raw features                    | that task (+ derived)         |
| `serve_tf_example`   | `examples`: 1-D serialized `tf.Example`s | the same as `serving_default` |

Derived outputs: `<task>_class_id` (argmax) beside a Multiclass task's
probabilities, `<task>_tags` (argmax per token) beside a Tagging task's.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import keras
import tensorflow as tf

from keras_mtl import _conditions as conditions
from keras_mtl.tasks import Multiclass, Tagging, ZeroInflatedLognormal

SERVING_DEFAULT = "serving_default"
TF_EXAMPLE = "serve_tf_example"
EXAMPLES = "examples"  # the one input of serve_tf_example, named as TFX names it


def input_specs(model: keras.Model) -> dict[str, tf.TensorSpec]:
    """One `tf.TensorSpec` per model input, named after it, batch-first.

    A Keras input of shape (None, 1) (one value per example, as
    `FeatureSpace` makes them) is served as shape (None,): clients send one
    scalar per example and feature.

    Example:
    >>> x = keras.Input((1,), name="age")
    >>> input_specs(keras.Model(x, keras.layers.Dense(2)(x)))["age"].shape
    TensorShape([None])
    """
    specs = {}
    for tensor in model.inputs:
        name = tensor.name
        shape = list(tensor.shape)
        if shape[1:] == [1]:
            shape = [None]
        specs[name] = tf.TensorSpec([None] + shape[1:], tf.as_dtype(tensor.dtype), name=name)
    return specs


def model_input_structure(model: keras.Model, features: Mapping[str, tf.Tensor]):
    """Maps named serving inputs back to the structure the model was built on.

    Example:
    >>> x = keras.Input((1,), name="age")
    >>> model_input_structure(keras.Model(x, x), {"age": tf.constant([1.0, 2.0])}).shape
    TensorShape([2, 1])
    """

    def pick(tensor):
        value = tf.convert_to_tensor(features[tensor.name])
        if value.shape.rank == len(tensor.shape) - 1:
            value = tf.expand_dims(value, -1)
        return value

    return keras.tree.map_structure(pick, model.input)


def task_names(model: keras.Model) -> list[str]:
    """The model's task (output) names, in output order.

    Example:
    >>> import keras_mtl as mtl
    >>> task_names(mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")]))
    ['a', 'b']
    """
    if getattr(model, "tasks", None):
        return [t.name for t in model.tasks]
    return list(model.output_names)


def output_keys(model: keras.Model) -> dict[str, list[str]]:
    """`{task: [output keys]}`: the task's own key, then its derived ones.

    Raises a `ValueError` naming both tasks when a derived key is also a task
    name (e.g. tasks "topic" and "topic_class_id"), since one output would hide
    the other.

    Example:
    >>> import keras_mtl as mtl
    >>> output_keys(mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Multiclass("topic", 3)]))
    {'topic': ['topic', 'topic_class_id']}
    """
    keys = {name: [name] + list(_derived(model, name)) for name in task_names(model)}
    owner: dict[str, str] = {}
    for task, names in keys.items():
        for key in names:
            if key in owner:
                raise ValueError(
                    f"Serving output {key!r} is claimed by both task {owner[key]!r} and task "
                    f"{task!r}; rename one of the tasks."
                )
            owner[key] = task
    return keys


def _derived(model: keras.Model, name: str) -> dict[str, Callable]:
    """`{derived output key: function of the model's outputs}` (none for plain Keras models)."""
    task = model.get_task(name) if hasattr(model, "get_task") else None
    # argmax as int64: REST clients read a plain integer class/tag id.
    if isinstance(task, Multiclass):
        return {f"{name}_class_id": lambda o: tf.argmax(o[name], axis=-1, output_type=tf.int64)}
    if isinstance(task, Tagging):
        return {f"{name}_tags": lambda o: tf.argmax(o[name], axis=-1, output_type=tf.int64)}
    if isinstance(task, ZeroInflatedLognormal):
        return {f"{name}_value": lambda o: task.expected_value(o[name])}
    if task is not None and task in conditions.joint_tasks(model.tasks):
        # p(given) x p(task | given): ESMM's pCTCVR, what bidding and ranking read.
        return {conditions.joint_name(task): lambda o: _squeezed(conditions.joint_prediction(task, o))}
    return {}


def _squeezed(value):
    """A (batch, 1) output as (batch,), so a REST response reads one number per instance."""
    return tf.squeeze(value, -1) if value.shape[-1] == 1 and value.shape.rank == 2 else value


def finite_features(features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """`features`, with each floating one checked for NaN and inf: a request holding one fails
    with an error naming the input, instead of answering with a plausible-looking number.

    Example:
    >>> try:
    ...     finite_features({"age": tf.constant([31.0, float("nan")])})
    ... except tf.errors.InvalidArgumentError as e:
    ...     print(e.message.split(" : ")[0].split("}} ")[-1])
    input 'age' of the request holds NaN or inf; send finite values (fill missing ones)
    """
    # One CheckNumerics op per float input: a core op, run by TF Serving, whose
    # error (InvalidArgument) reaches REST and gRPC clients with its message.
    return {
        name: tf.debugging.check_numerics(
            value, f"input {name!r} of the request holds NaN or inf; send finite values (fill missing ones)"
        )
        if tf.as_dtype(value.dtype).is_floating
        else value
        for name, value in features.items()
    }


def serve(
    model: keras.Model, features: Mapping[str, tf.Tensor], tasks: Sequence[str] | None = None
) -> dict[str, tf.Tensor]:
    """The serving answer: each task's output keyed by task name, plus its derived outputs.

    Single-unit outputs (binary probabilities, scalar regressions) are
    returned as shape (batch,) so that a REST response reads
    `{"income": 0.93, ...}` per instance. `tasks` limits the answer to some
    tasks (the `predict_<task>` signatures). Float inputs holding NaN or inf
    are refused (`finite_features`).

    Example:
    >>> import numpy as np, keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,), name="x"), [mtl.tasks.Multiclass("k", 3)])
    >>> {k: v.shape for k, v in serve(model, {"x": np.ones((4, 2), "float32")}).items()}
    {'k': TensorShape([4, 3]), 'k_class_id': TensorShape([4])}
    """
    keys = output_keys(model)
    wanted = list(keys) if tasks is None else list(tasks)
    outputs = model(model_input_structure(model, finite_features(features)), training=False)
    answer = {}
    for name in wanted:
        answer[name] = _squeezed(outputs[name])
        for key, derive in _derived(model, name).items():
            answer[key] = derive(outputs)
    return answer


def example_features(model: keras.Model) -> dict[str, tf.io.FixedLenFeature]:
    """The `tf.Example` feature spec of `serve_tf_example`: one feature per model input.

    tf.Example holds three kinds of lists, so strings are read as `tf.string`,
    integers and booleans as `tf.int64`, floats as `tf.float32`, and cast to
    the input's dtype after parsing. A per-example shape whose first axis is
    unknown (a variable-length sequence) is read as a
    `tf.io.FixedLenSequenceFeature`, padded with 0 / "" to the longest in the
    batch, as a client padding a dense batch would send it.

    Example:
    >>> x = keras.Input((3,), name="x", dtype="int32")
    >>> example_features(keras.Model(x, x))["x"]
    FixedLenFeature(shape=(3,), dtype=tf.int64, default_value=None)
    """
    features = {}
    for name, spec in input_specs(model).items():
        wire = wire_dtype(name, spec.dtype)
        shape = spec.shape[1:]
        if shape.is_fully_defined():
            features[name] = tf.io.FixedLenFeature(tuple(shape.as_list()), wire)
        elif shape.rank and shape[1:].is_fully_defined():
            features[name] = tf.io.FixedLenSequenceFeature(
                tuple(shape[1:].as_list()), wire, allow_missing=True
            )
        else:
            raise ValueError(
                f"Input {name!r} has per-example shape {shape}; serve_tf_example needs every "
                "axis but the first fixed. Give the keras.Input a fixed shape."
            )
    return features


def wire_dtype(name: str, dtype: tf.DType) -> tf.DType:
    """The tf.Example list type an input of `dtype` travels as.

    Example:
    >>> wire_dtype("age", tf.float64)
    tf.float32
    """
    if dtype == tf.string:
        return tf.string
    if dtype.is_integer or dtype == tf.bool:
        return tf.int64
    if dtype.is_floating:
        return tf.float32
    raise ValueError(
        f"Input {name!r} has dtype {dtype.name}, which a tf.Example cannot carry "
        "(it holds bytes, int64 and float lists)."
    )


def parse_examples(model: keras.Model, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses a batch of serialized `tf.Example`s into the raw features `serve` takes.

    Example:
    >>> x = keras.Input((2,), name="x")
    >>> ex = tf.train.Example(features=tf.train.Features(feature={
    ...     "x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 2.0]))}))
    >>> parse_examples(keras.Model(x, x), tf.constant([ex.SerializeToString()]))["x"].numpy().tolist()
    [[1.0, 2.0]]
    """
    specs = input_specs(model)
    parsed = tf.io.parse_example(serialized, example_features(model))
    return {name: tf.cast(parsed[name], specs[name].dtype) for name in specs}


def signature_names(model: keras.Model) -> list[str]:
    """Every signature the export has: serving_default, predict_<task> per task, serve_tf_example.

    Example:
    >>> import keras_mtl as mtl
    >>> signature_names(mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Binary("a")]))
    ['serving_default', 'predict_a', 'serve_tf_example']
    """
    return [SERVING_DEFAULT] + [f"predict_{t}" for t in output_keys(model)] + [TF_EXAMPLE]


def signature_tasks(model: keras.Model, signature: str) -> list[str]:
    """The tasks whose outputs `signature` returns.

    Example:
    >>> import keras_mtl as mtl
    >>> model = mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Binary("a"), mtl.tasks.Binary("b")])
    >>> signature_tasks(model, "predict_b"), signature_tasks(model, "serve_tf_example")
    (['b'], ['a', 'b'])
    """
    names = task_names(model)
    if signature in (SERVING_DEFAULT, TF_EXAMPLE):
        return names
    if signature.startswith("predict_") and signature[len("predict_") :] in names:
        return [signature[len("predict_") :]]
    raise ValueError(f"No signature {signature!r}; the model has {signature_names(model)}.")


def signature_input_specs(model: keras.Model, signature: str) -> dict[str, tf.TensorSpec]:
    """The named inputs `signature` takes.

    Example:
    >>> x = keras.Input((2,), name="x")
    >>> signature_input_specs(keras.Model(x, {"a": x}), "serve_tf_example")["examples"].dtype
    tf.string
    """
    if signature == TF_EXAMPLE:
        return {EXAMPLES: tf.TensorSpec([None], tf.string, name=EXAMPLES)}
    return input_specs(model)


def endpoints(model: keras.Model) -> dict[str, tuple[Callable, dict[str, tf.TensorSpec]]]:
    """`{signature: (function of a dict of named inputs, its input specs)}` for the export.

    Example:
    >>> import keras_mtl as mtl
    >>> sorted(endpoints(mtl.models.shared_bottom(keras.Input((2,)), [mtl.tasks.Binary("a")])))
    ['predict_a', 'serve_tf_example', 'serving_default']
    """
    found = {}
    for signature in signature_names(model):
        if signature == TF_EXAMPLE:
            example_features(model)  # fails here, naming the input, if one cannot travel
        found[signature] = (_endpoint(model, signature), signature_input_specs(model, signature))
    return found


def _endpoint(model: keras.Model, signature: str) -> Callable:
    # A closure, not default arguments: tf.function would trace defaults as inputs.
    if signature == TF_EXAMPLE:

        def answer(inputs):
            return serve(model, parse_examples(model, inputs[EXAMPLES]))

    else:
        tasks = tuple(signature_tasks(model, signature))

        def answer(inputs):
            return serve(model, inputs, tasks)

    # Named after the signature, so graph functions (and op lint messages) read
    # "__inference_predict_income_..." rather than "<lambda>".
    answer.__name__ = answer.__qualname__ = signature
    return answer
