"""TF Serving's batching parameters file (`--enable_batching --batching_parameters_file=...`).

The file is a text `tensorflow.serving.BatchingParameters` proto. Its module
(`tensorflow_serving/servables/tensorflow/session_bundle_config_pb2`) is part
of the model server, not of the `tensorflow-serving-api` wheel, so when it
cannot be imported the message is declared here with protobuf's descriptor
API, under the same full name and field names as
`session_bundle_config.proto`, in a private descriptor pool. Text protos name
fields, not numbers, so the file reads the same either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2


class ServingConfigError(ValueError):
    """A TF Serving config (models.config or batching parameters) would be rejected or misbehave."""


def _declared_message():
    """BatchingParameters from session_bundle_config.proto, fields as TF Serving 2.x defines them."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file.message_type.add(name="BatchingParameters")
    F = descriptor_pb2.FieldDescriptorProto
    for name, number, kind, type_name, label in [
        ("max_batch_size", 1, F.TYPE_MESSAGE, ".google.protobuf.Int64Value", F.LABEL_OPTIONAL),
        ("batch_timeout_micros", 2, F.TYPE_MESSAGE, ".google.protobuf.Int64Value", F.LABEL_OPTIONAL),
        ("max_enqueued_batches", 3, F.TYPE_MESSAGE, ".google.protobuf.Int64Value", F.LABEL_OPTIONAL),
        ("num_batch_threads", 4, F.TYPE_MESSAGE, ".google.protobuf.Int64Value", F.LABEL_OPTIONAL),
        ("thread_pool_name", 5, F.TYPE_MESSAGE, ".google.protobuf.StringValue", F.LABEL_OPTIONAL),
        ("allowed_batch_sizes", 6, F.TYPE_INT64, None, F.LABEL_REPEATED),
        ("pad_variable_length_inputs", 7, F.TYPE_BOOL, None, F.LABEL_OPTIONAL),
    ]:
        field = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


try:
    from tensorflow_serving.servables.tensorflow.session_bundle_config_pb2 import BatchingParameters
except ImportError:  # the serving-api wheel does not ship it
    BatchingParameters = _declared_message()


def batching_parameters(
    *,
    max_batch_size: int,
    batch_timeout_micros: int | None = None,
    num_batch_threads: int | None = None,
    max_enqueued_batches: int | None = None,
    allowed_batch_sizes: Sequence[int] = (),
    pad_variable_length_inputs: bool = False,
    thread_pool_name: str | None = None,
):
    """A checked `BatchingParameters` message; fields left `None` keep TF Serving's defaults.

    Args:
        max_batch_size: the largest batch TF Serving forms (and the largest
            request it accepts, warmup requests included).
        batch_timeout_micros: how long to wait to fill a batch; 0 = no wait.
        num_batch_threads: threads that run batches (about the core count).
        max_enqueued_batches: queue length, in batches, before requests are refused.
        allowed_batch_sizes: batch sizes to pad up to; increasing, the last
            equal to `max_batch_size`.
        pad_variable_length_inputs: pad inputs of different lengths to batch them.
        thread_pool_name: the batch threads' name.

    Example:
    >>> p = batching_parameters(max_batch_size=64, batch_timeout_micros=1000)
    >>> p.max_batch_size.value, p.HasField("num_batch_threads")
    (64, False)
    """
    params = BatchingParameters()
    for name, value, least in [
        ("max_batch_size", max_batch_size, 1),
        ("batch_timeout_micros", batch_timeout_micros, 0),
        ("num_batch_threads", num_batch_threads, 1),
        ("max_enqueued_batches", max_enqueued_batches, 1),
    ]:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ServingConfigError(f"Batching: {name} must be an integer >= {least}, got {value!r}.")
        getattr(params, name).value = value
    sizes = list(allowed_batch_sizes)
    if sizes:
        integers = all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)
        if not integers or sizes != sorted(set(sizes)):
            raise ServingConfigError(
                f"Batching: allowed_batch_sizes must be increasing integers >= 1, got {sizes}."
            )
        if sizes[-1] != max_batch_size:
            raise ServingConfigError(
                f"Batching: the last of allowed_batch_sizes {sizes} must equal max_batch_size "
                f"({max_batch_size}), as TF Serving requires."
            )
        params.allowed_batch_sizes.extend(sizes)
    params.pad_variable_length_inputs = bool(pad_variable_length_inputs)
    if thread_pool_name is not None:
        params.thread_pool_name.value = str(thread_pool_name)
    return params


def write_batching_parameters(params, path: str | os.PathLike) -> str:
    """Writes `params` as a text proto at `path`, checks that it parses back equal; returns the text.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "batching.config")
    >>> print(write_batching_parameters(batching_parameters(max_batch_size=8), path))
    max_batch_size {
      value: 8
    }
    <BLANKLINE>
    """
    text = text_format.MessageToString(params)
    if read_batching_parameters_text(text) != params:
        raise ServingConfigError("The batching parameters do not survive a text round trip.")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return text


def read_batching_parameters_text(text: str):
    """Parses a batching parameters text proto; a bad one raises `ServingConfigError`.

    Example:
    >>> read_batching_parameters_text("max_batch_size { value: 32 }").max_batch_size.value
    32
    """
    try:
        return text_format.Parse(text, BatchingParameters())
    except text_format.ParseError as e:
        raise ServingConfigError(f"Not a valid BatchingParameters text proto: {e}") from e
