"""Mixture sources: checked, then given one element structure (every feature, every task's label).

A source is an unbatched `tf.data.Dataset` of `(features, labels)` or
`(features, labels, sample_weights)`: `features` a dict of per-example
tensors, `labels` a dict keyed by task label key holding the labels of the
tasks this source labels, `sample_weights` a scalar or a dict keyed by task
name. `plan()` decides the common structure and `conform()` maps a source
to it, putting each task's missing marker where a source has no label.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from keras_mtl.tasks import Regression, Task, validate_name


@dataclasses.dataclass
class Plan:
    """The element structure every conformed source has.

    Attributes:
        features: per-example spec of each feature the stream carries.
        defaults: value filled in for a feature a source does not have.
        labels: per-example spec of each task label key.
        markers: missing-label marker per label key (-1, or NaN for floats).
        weights: task names that get a sample weight, or None when no source
            has sample weights (the stream is then `(features, labels)`).

    Example:
    >>> Plan({}, {}, {"y": tf.TensorSpec((), tf.int64)}, {"y": -1}, None).markers
    {'y': -1}
    """

    features: dict[str, tf.TensorSpec]
    defaults: dict[str, Any]
    labels: dict[str, tf.TensorSpec]
    markers: dict[str, float]
    weights: tuple[str, ...] | None


@dataclasses.dataclass
class Parts:
    """The per-example specs of one source's features, labels and sample weights.

    Example:
    >>> Parts({"x": tf.TensorSpec((), tf.float32)}, {"y": tf.TensorSpec((), tf.int64)}).weights is None
    True
    """

    features: dict[str, tf.TensorSpec]
    labels: dict[str, tf.TensorSpec]
    weights: Any = None


def check_sources(sources: Mapping[str, tf.data.Dataset]) -> dict[str, tf.data.Dataset]:
    """Checks that `sources` is a non-empty dict of named `tf.data.Dataset`s.

    Example:
    >>> list(check_sources({"news": tf.data.Dataset.range(3)}))
    ['news']
    """
    if not isinstance(sources, Mapping) or not sources:
        raise ValueError(
            "Sources must be a non-empty dict {source_name: tf.data.Dataset}; got "
            f"{type(sources).__name__}."
        )
    for name, ds in sources.items():
        validate_name(name, "source")
        if not isinstance(ds, tf.data.Dataset):
            raise TypeError(f"Source {name!r} must be a tf.data.Dataset, got {type(ds).__name__}.")
    return dict(sources)


def source_size(name: str, dataset: tf.data.Dataset, given: int | None = None) -> int:
    """The number of examples in a source: `given`, else its cardinality, else one counting pass.

    Example:
    >>> source_size("a", tf.data.Dataset.range(5))
    5
    """
    card = int(dataset.cardinality())
    if card == 0:
        raise ValueError(f"Source {name!r} is empty: a mixture needs at least one example per source.")
    if given is not None:
        if int(given) != given or int(given) < 1:
            raise ValueError(f"sizes[{name!r}] must be an integer >= 1, got {given!r}.")
        return int(given)
    if card == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"Source {name!r} is infinite (did it .repeat()?), so its size is unknown: pass "
            f"sizes={{{name!r}: number_of_examples}} or give the finite dataset (the mixture repeats it)."
        )
    if card == tf.data.UNKNOWN_CARDINALITY:
        # e.g. after filter(): one pass counts it. Pass sizes= to skip this.
        card = int(dataset.reduce(np.int64(0), lambda count, _: count + 1))
        if card == 0:
            raise ValueError(f"Source {name!r} is empty: a mixture needs at least one example per source.")
    return card


def parts(name: str, dataset: tf.data.Dataset) -> Parts:
    """Splits a source's element spec into features, labels and sample weights, checking its form.

    Example:
    >>> ds = tf.data.Dataset.from_tensor_slices(({"x": [1.0, 2.0]}, {"y": [0, 1]}))
    >>> sorted(parts("a", ds).labels)
    ['y']
    """
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError(
            f"Source {name!r} must yield (features, labels) or (features, labels, "
            f"sample_weights) tuples; its elements are {spec}."
        )
    flat = tf.nest.flatten(spec)
    if flat and all(s.shape.rank and s.shape[0] is None for s in flat):
        raise ValueError(
            f"Source {name!r} looks batched (every component has an unknown first "
            f"dimension: {spec}). mixture() mixes single examples and batches them "
            "itself: pass dataset.unbatch()."
        )
    features, labels = spec[0], spec[1]
    for what, value in (("features", features), ("labels", labels)):
        if not isinstance(value, Mapping) or not all(
            isinstance(v, tf.TensorSpec) for v in value.values()
        ):
            raise ValueError(
                f"Source {name!r}: {what} must be a dict {{name: dense tensor}}, got {value}. "
                "(e.g. ds.map(lambda x, y: ({'image': x}, {'digit': y})))"
            )
    if not labels:
        raise ValueError(f"Source {name!r} labels no task: its labels dict is empty.")
    for key, s in labels.items():
        if not (s.dtype.is_floating or s.dtype.is_integer or s.dtype == tf.bool):
            raise ValueError(
                f"Source {name!r}: label {key!r} has dtype {s.dtype.name}; labels must be numeric."
            )
    return Parts(dict(features), dict(labels), spec[2] if len(spec) == 3 else None)


def plan(
    source_parts: Mapping[str, Parts],
    tasks: Sequence[Task],
    *,
    inputs: Any = None,
    defaults: Mapping[str, Any] | None = None,
) -> Plan:
    """The common element structure of the sources, or an error saying what does not fit.

    Example:
    >>> from keras_mtl.tasks import Binary, Regression
    >>> a = Parts({"x": tf.TensorSpec((), tf.float32)}, {"click": tf.TensorSpec((), tf.int64)})
    >>> b = Parts({"x": tf.TensorSpec((), tf.float32)}, {"dwell": tf.TensorSpec((), tf.float32)})
    >>> p = plan({"a": a, "b": b}, [Binary("click"), Regression("dwell")])
    >>> p.markers
    {'click': -1, 'dwell': nan}
    """
    features = _feature_specs(source_parts, inputs)
    labels = _label_specs(source_parts, tasks)
    return Plan(
        features=features,
        defaults=_defaults(source_parts, features, inputs, defaults),
        labels=labels,
        markers={k: (float("nan") if s.dtype.is_floating else -1) for k, s in labels.items()},
        weights=_weight_tasks(source_parts, tasks),
    )


def conform(dataset: tf.data.Dataset, source: Parts, plan: Plan) -> tf.data.Dataset:
    """Maps a source to the plan's structure: missing features get their default, missing labels their marker.

    Example:
    >>> from keras_mtl.tasks import Binary, Regression
    >>> ds = tf.data.Dataset.from_tensor_slices(({"x": [1.0]}, {"click": [1]}))
    >>> src = parts("a", ds)
    >>> p = plan({"a": src}, [Binary("click")])
    >>> x, y = next(iter(conform(ds, src, p)))
    >>> int(y["click"])
    1
    """

    def to_plan(*element):
        x, y = element[0], element[1]
        features = {
            k: _fit(x[k], spec) if k in x else tf.fill(spec.shape, tf.constant(plan.defaults[k], spec.dtype))
            for k, spec in plan.features.items()
        }
        labels = {
            k: _fit(tf.cast(y[k], spec.dtype), spec)
            if k in y
            else tf.fill(spec.shape, tf.constant(plan.markers[k], spec.dtype))
            for k, spec in plan.labels.items()
        }
        if plan.weights is None:
            return features, labels
        return features, labels, _weights(element[2] if len(element) == 3 else None, plan.weights)

    return dataset.map(to_plan)


# ---------------------------------------------------------------- features
def input_specs(inputs: Any) -> dict[str, tf.TensorSpec]:
    """Per-example specs of a model's inputs (`model`, `model.input` or `data.inputs`).

    Example:
    >>> import keras
    >>> input_specs({"text": keras.Input((), dtype="string")})
    {'text': TensorSpec(shape=(), dtype=tf.string, name=None)}
    """
    if hasattr(inputs, "inputs") and hasattr(inputs, "input"):  # a keras.Model
        inputs = inputs.input
    if hasattr(inputs, "shape") and hasattr(inputs, "dtype") and getattr(inputs, "name", None):
        inputs = {inputs.name: inputs}  # one named keras.Input
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError(
            "inputs must be the model's inputs as a dict {name: keras.Input} (e.g. "
            f"model.input or data.inputs) or the model itself; got {type(inputs).__name__}."
        )
    # Keras shapes include the batch axis; sources hold single examples.
    return {
        k: tf.TensorSpec(tuple(v.shape)[1:], tf.as_dtype(v.dtype)) for k, v in inputs.items()
    }


def _feature_specs(source_parts: Mapping[str, Parts], inputs: Any) -> dict[str, tf.TensorSpec]:
    if inputs is not None:
        specs = input_specs(inputs)
        for name, p in source_parts.items():
            for k, target in specs.items():
                if k in p.features:
                    _check_fits(p.features[k], target, f"Source {name!r}: feature {k!r}", "the model input")
        return specs
    keys = {name: sorted(p.features) for name, p in source_parts.items()}
    specs: dict[str, tf.TensorSpec] = {}
    for k in sorted(set().union(*keys.values())):
        having = {n: p.features[k] for n, p in source_parts.items() if k in p.features}
        first_name, first = next(iter(having.items()))
        for n, s in having.items():
            if s.dtype != first.dtype:
                raise ValueError(
                    f"Feature {k!r} is {s.dtype.name} in source {n!r} but {first.dtype.name} in "
                    f"source {first_name!r}; give it one dtype in every source."
                )
        specs[k] = tf.TensorSpec(_unify_shapes(f"Feature {k!r}", having), first.dtype)
    return specs


def _defaults(source_parts, specs, inputs, defaults) -> dict[str, Any]:
    defaults = dict(defaults or {})
    unknown = sorted(set(defaults) - set(specs))
    if unknown:
        raise ValueError(
            f"defaults name feature(s) {unknown} that the stream does not carry; features: {sorted(specs)}."
        )
    for name, p in source_parts.items():
        missing = sorted(k for k in specs if k not in p.features and k not in defaults)
        if missing:
            if inputs is None:
                raise ValueError(
                    f"Sources have different features ({_listing(source_parts, 'features')}): "
                    f"source {name!r} lacks {missing}. Pass inputs=model.input (the features the model "
                    "takes; others are dropped) and/or defaults={feature: value} for a feature some "
                    "sources lack."
                )
            raise ValueError(
                f"Source {name!r} has no feature(s) {missing}, which the model inputs need; add them "
                f"to the source or pass defaults={{{missing[0]!r}: value}}."
            )
    for k, value in defaults.items():
        if not specs[k].shape.is_fully_defined():
            raise ValueError(
                f"defaults[{k!r}]: feature {k!r} has shape {specs[k].shape}; a default needs a fixed shape."
            )
        try:
            tf.constant(value, specs[k].dtype)
        except (TypeError, ValueError) as e:
            raise ValueError(f"defaults[{k!r}]={value!r} is not a {specs[k].dtype.name} value: {e}") from None
    return defaults


# ------------------------------------------------------------------ labels
def _label_specs(source_parts: Mapping[str, Parts], tasks: Sequence[Task]) -> dict[str, tf.TensorSpec]:
    readers: dict[str, list[Task]] = {}
    for t in tasks:
        readers.setdefault(t.label, []).append(t)
    for name, p in source_parts.items():
        unknown = sorted(set(p.labels) - set(readers))
        if unknown:
            raise ValueError(
                f"Source {name!r} labels {unknown}, which no task reads; the tasks read label "
                f"keys {sorted(readers)}. (Drop those labels or add the tasks.)"
            )
    specs = {}
    for key, ts in readers.items():
        having = {n: p.labels[key] for n, p in source_parts.items() if key in p.labels}
        if not having:
            raise ValueError(
                f"No source labels task {ts[0].name!r} (label key {key!r}); the sources label "
                f"{_listing(source_parts, 'labels')}."
            )
        shape = _unify_shapes(f"Label {key!r}", having)
        if not shape.is_fully_defined():
            raise ValueError(
                f"Label {key!r} has shape {shape} per example; pad it to a fixed shape so "
                "that the sources without it can carry a missing marker of that shape."
            )
        specs[key] = tf.TensorSpec(shape, _label_dtype([s.dtype for s in having.values()], ts))
    return specs


def _label_dtype(dtypes: list[tf.DType], tasks: list[Task]) -> tf.DType:
    # The marker must be representable: NaN needs a float, -1 a signed integer.
    if any(isinstance(t, Regression) for t in tasks) or any(d.is_floating for d in dtypes):
        floats = {d for d in dtypes if d.is_floating}
        return floats.pop() if len(floats) == 1 and len(set(dtypes)) == 1 else tf.float32
    if len(set(dtypes)) == 1 and dtypes[0].is_integer and not dtypes[0].is_unsigned:
        return dtypes[0]
    return tf.int64


# ----------------------------------------------------------------- weights
def _weight_tasks(source_parts: Mapping[str, Parts], tasks: Sequence[Task]) -> tuple[str, ...] | None:
    names = [t.name for t in tasks]
    any_weights = False
    for name, p in source_parts.items():
        if p.weights is None:
            continue
        any_weights = True
        specs = p.weights if isinstance(p.weights, Mapping) else {"*": p.weights}
        if isinstance(p.weights, Mapping):
            unknown = sorted(set(p.weights) - set(names))
            if unknown:
                raise ValueError(
                    f"Source {name!r}: sample weights for unknown task(s) {unknown}; tasks: {names}."
                )
        for k, s in specs.items():
            if not isinstance(s, tf.TensorSpec) or s.shape.num_elements() != 1:
                raise ValueError(
                    f"Source {name!r}: sample weights must be one number per example (a scalar, "
                    f"or a dict {{task: scalar}}); got {s}."
                )
    return tuple(names) if any_weights else None


def _weights(w, task_names: tuple[str, ...]) -> dict[str, tf.Tensor]:
    one = tf.constant(1.0, tf.float32)
    if w is None:
        return {n: one for n in task_names}
    if isinstance(w, Mapping):
        return {n: tf.reshape(tf.cast(w[n], tf.float32), ()) if n in w else one for n in task_names}
    w = tf.reshape(tf.cast(w, tf.float32), ())
    return {n: w for n in task_names}


def _listing(source_parts: Mapping[str, Parts], part: str) -> dict[str, list[str]]:
    """`{source: sorted keys}` of its features or labels, for error messages."""
    return {n: sorted(getattr(p, part)) for n, p in source_parts.items()}


# ------------------------------------------------------------------ shapes
def _unify_shapes(what: str, specs: Mapping[str, tf.TensorSpec]) -> tf.TensorShape:
    """One per-example shape for a component that several sources carry."""
    (first_name, first), *rest = specs.items()
    shape = first.shape
    for n, s in rest:
        if shape.is_compatible_with(s.shape):
            shape = shape.most_specific_compatible_shape(s.shape)
        elif not _same_but_trailing_ones(shape, s.shape):
            raise ValueError(
                f"{what} has shape {s.shape} in source {n!r} but {first.shape} in source "
                f"{first_name!r}; give it one per-example shape in every source."
            )
    return shape


def _check_fits(source: tf.TensorSpec, target: tf.TensorSpec, what: str, where: str) -> None:
    if source.dtype != target.dtype:
        raise ValueError(
            f"{what} is {source.dtype.name} but {where} is {target.dtype.name}; cast it in the source."
        )
    if not (
        source.shape.is_compatible_with(target.shape)
        or _same_but_trailing_ones(source.shape, target.shape)
    ):
        raise ValueError(
            f"{what} has per-example shape {source.shape} but {where} takes {target.shape}."
        )


def _same_but_trailing_ones(a: tf.TensorShape, b: tf.TensorShape) -> bool:
    # () and (1,), or (28, 28) and (28, 28, 1): the same values, reshaped.
    if a.rank is None or b.rank is None or not (a.is_fully_defined() and b.is_fully_defined()):
        return False
    return _strip_ones(a.as_list()) == _strip_ones(b.as_list())


def _strip_ones(dims: list[int]) -> list[int]:
    while dims and dims[-1] == 1:
        dims = dims[:-1]
    return dims


def _fit(value: tf.Tensor, spec: tf.TensorSpec) -> tf.Tensor:
    """A source's tensor in the plan's shape (reshaped across trailing ones, else shape-checked)."""
    if value.shape.is_fully_defined() and spec.shape.is_fully_defined() and value.shape != spec.shape:
        return tf.reshape(value, spec.shape)
    return tf.ensure_shape(value, spec.shape)
