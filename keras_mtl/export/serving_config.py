"""TF Serving's `models.config` (`--model_config_file=...`): models, base paths, versions, labels.

Everything is built as `tensorflow_serving.config` protos, written with
`text_format` and parsed back before it is trusted. What TF Serving would
only discover at load time (a label on a version that is not on disk or not
loaded, a base path without versions, a version without `saved_model.pb`, a
warmup batch larger than `max_batch_size`) fails here, naming the model,
label or version.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from keras_mtl.export import batching as batching_lib
from keras_mtl.export.batching import ServingConfigError
from keras_mtl.export.metadata import METADATA
from keras_mtl.export.saved_model import versions as versions_on_disk

# The name goes into URLs (/v1/models/<name>) and gRPC model specs.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Labels go into URLs too (/v1/models/<name>/labels/<label>).
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def model_entry(
    name: str,
    base_path: str | os.PathLike,
    *,
    latest: int | None = None,
    versions: Sequence[int] | None = None,
    all_versions: bool = False,
    labels: Mapping[str, int] | None = None,
    server_base_path: str | None = None,
) -> model_server_config_pb2.ModelConfig:
    """One model of a `models.config`, checked against the versions on disk under `base_path`.

    Choose at most one version policy: `latest=N` (the N highest versions),
    `versions=[...]` (exactly those) or `all_versions=True`. Without one, the
    policy is the labelled versions when there are `labels`, else `latest=1`
    (TF Serving's default). Every label must point to a version that is on
    disk and that the policy loads: TF Serving refuses a label on a version it
    has not loaded.

    Args:
        name: the model name clients use (`/v1/models/<name>`).
        base_path: the directory holding the integer version folders here.
        latest: version policy: serve the N highest versions.
        versions: version policy: serve exactly these versions.
        all_versions: version policy: serve every version on disk.
        labels: `{label: version}`, e.g. `{"stable": 1, "canary": 2}`.
        server_base_path: the base path as the server sees it (e.g.
            `/models/census` in a container); default: `base_path`, absolute.

    Example:
    >>> import tempfile
    >>> base = tempfile.mkdtemp()
    >>> for v in (1, 2):  # two exported versions (saved_model.pb is what TF Serving looks for)
    ...     os.makedirs(f"{base}/{v}"); open(f"{base}/{v}/saved_model.pb", "wb").close()
    >>> entry = model_entry("census", base, labels={"stable": 1, "canary": 2})
    >>> list(entry.model_version_policy.specific.versions), sorted(entry.version_labels.items())
    ([1, 2], [('canary', 2), ('stable', 1)])
    """
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise ServingConfigError(
            f"Invalid model name {name!r}: use letters, digits, '_', '-' or '.', starting with "
            "a letter or digit (it goes into request URLs)."
        )
    on_disk = versions_on_disk(base_path)
    if not on_disk:
        raise ServingConfigError(
            f"Model {name!r}: no version folders under {base_path}; export one first "
            "(TF Serving would wait for one forever)."
        )
    chosen = sum([latest is not None, versions is not None, bool(all_versions)])
    if chosen > 1:
        raise ServingConfigError(
            f"Model {name!r}: choose one version policy (latest, versions or all_versions); got "
            f"latest={latest!r}, versions={versions!r}, all_versions={all_versions!r}."
        )
    labels = _checked_labels(name, labels or {}, on_disk, base_path)
    if chosen == 0:
        if labels:
            versions = sorted(set(labels.values()))
        else:
            latest = 1
    entry = model_server_config_pb2.ModelConfig(
        name=name,
        base_path=str(server_base_path) if server_base_path is not None else os.path.abspath(base_path),
        model_platform="tensorflow",
    )
    policy = entry.model_version_policy
    if latest is not None:
        if isinstance(latest, bool) or not isinstance(latest, int) or latest < 1:
            raise ServingConfigError(f"Model {name!r}: latest must be an integer >= 1, got {latest!r}.")
        policy.latest.num_versions = latest
        served = on_disk[-latest:]
        described = f"latest {latest} (versions {served})"
    elif versions is not None:
        wanted = list(versions)
        if not wanted or any(isinstance(v, bool) or not isinstance(v, int) for v in wanted):
            raise ServingConfigError(
                f"Model {name!r}: versions must be a non-empty list of integers, got {versions!r}."
            )
        missing = sorted(set(wanted) - set(on_disk))
        if missing:
            raise ServingConfigError(
                f"Model {name!r}: versions {missing} are not under {base_path}; it has {on_disk}."
            )
        served = sorted(set(wanted))
        policy.specific.versions.extend(served)
        described = f"specific versions {served}"
    else:
        policy.all.SetInParent()
        served, described = on_disk, f"all versions ({on_disk})"
    for label, version in labels.items():
        if version not in served:
            raise ServingConfigError(
                f"Model {name!r}: label {label!r} points to version {version}, which the policy "
                f"{described} does not load; TF Serving only labels loaded versions."
            )
    for version in served:
        if not (Path(base_path) / str(version) / "saved_model.pb").is_file():
            raise ServingConfigError(
                f"Model {name!r}: version {version} under {base_path} has no saved_model.pb; "
                "TF Serving would fail to load it."
            )
    for label, version in labels.items():
        entry.version_labels[label] = version
    return entry


def _checked_labels(name: str, labels: Mapping, on_disk: list[int], base_path) -> dict[str, int]:
    checked = {}
    for label, version in labels.items():
        if not isinstance(label, str) or not _LABEL.match(label):
            raise ServingConfigError(
                f"Model {name!r}: invalid label {label!r}; use a letter followed by letters, "
                "digits, '_' or '-'."
            )
        if isinstance(version, bool) or not isinstance(version, int):
            raise ServingConfigError(
                f"Model {name!r}: label {label!r} must map to an integer version, got {version!r}."
            )
        if version not in on_disk:
            raise ServingConfigError(
                f"Model {name!r}: label {label!r} points to version {version}, which is not under "
                f"{base_path}; it has versions {on_disk}."
            )
        checked[label] = version
    return checked


def model_config(
    models: model_server_config_pb2.ModelConfig | Sequence[model_server_config_pb2.ModelConfig],
    path: str | os.PathLike,
    *,
    batching=None,
    batching_path: str | os.PathLike | None = None,
) -> str:
    """Writes a `models.config` for `models` (from `model_entry`) at `path`; returns its text.

    With `batching` (a `BatchingParameters` from `batching_parameters`, or a
    dict of its arguments), also writes the batching parameters file,
    `batching_path` or `batching.config` beside `path`, and checks that every
    served version's warmup requests fit in `max_batch_size`. Start the server
    with `--model_config_file=<path>` (and `--enable_batching
    --batching_parameters_file=<batching_path>`).

    Example:
    >>> import tempfile
    >>> base = tempfile.mkdtemp()
    >>> os.makedirs(f"{base}/census/3"); open(f"{base}/census/3/saved_model.pb", "wb").close()
    >>> text = model_config(model_entry("census", f"{base}/census", server_base_path="/models/census"),
    ...                     f"{base}/models.config", batching={"max_batch_size": 64})
    >>> print(text)
    model_config_list {
      config {
        name: "census"
        base_path: "/models/census"
        model_platform: "tensorflow"
        model_version_policy {
          latest {
            num_versions: 1
          }
        }
      }
    }
    <BLANKLINE>
    >>> sorted(os.listdir(base))
    ['batching.config', 'census', 'models.config']
    """
    entries = [models] if isinstance(models, model_server_config_pb2.ModelConfig) else list(models)
    if not entries:
        raise ServingConfigError("models.config needs at least one model.")
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ServingConfigError(f"Model name(s) {duplicates} appear more than once in models.config.")
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.extend(entries)
    text = text_format.MessageToString(config)
    if read_model_config_text(text) != config:
        raise ServingConfigError("models.config does not survive a text round trip.")
    if batching is not None:
        params = _batching(batching)
        _check_warmup_fits(entries, params.max_batch_size.value)
        if batching_path is None:
            batching_path = Path(path).parent / "batching.config"
        batching_lib.write_batching_parameters(params, batching_path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    return text


def _batching(batching):
    if isinstance(batching, batching_lib.BatchingParameters):
        return batching
    if not isinstance(batching, Mapping):
        raise ServingConfigError(
            f"batching must be a BatchingParameters or a dict, got {type(batching).__name__}."
        )
    known = {
        "max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches",
        "allowed_batch_sizes", "pad_variable_length_inputs", "thread_pool_name",
    }
    unknown = sorted(set(batching) - known)
    if unknown:
        raise ServingConfigError(f"Unknown batching parameter(s) {unknown}; known: {sorted(known)}.")
    if "max_batch_size" not in batching:
        raise ServingConfigError("Batching needs max_batch_size.")
    return batching_lib.batching_parameters(**batching)


def _served(entry: model_server_config_pb2.ModelConfig) -> list[int]:
    """The versions under the entry's base path (where readable here) that its policy loads."""
    on_disk = versions_on_disk(entry.base_path)
    policy = entry.model_version_policy
    if policy.HasField("specific"):
        return [v for v in on_disk if v in set(policy.specific.versions)]
    if policy.HasField("all"):
        return on_disk
    return on_disk[-(policy.latest.num_versions or 1) :]


def _check_warmup_fits(entries, max_batch_size: int) -> None:
    """A warmup request larger than max_batch_size fails, and with it the version's load.

    Checked where the entry's base path is readable here (not for a server-side path).
    """
    for entry in entries:
        for version in _served(entry):
            meta = Path(entry.base_path) / str(version) / METADATA
            if not meta.is_file():
                continue
            warm = json.loads(meta.read_text()).get("warmup") or {}
            if warm.get("batch_size", 0) > max_batch_size:
                raise ServingConfigError(
                    f"Model {entry.name!r} version {version}: its warmup requests have "
                    f"{warm['batch_size']} rows, more than max_batch_size {max_batch_size}; with "
                    "batching on, TF Serving would fail to load it. Re-export with fewer warmup rows."
                )


def read_model_config_text(text: str) -> model_server_config_pb2.ModelServerConfig:
    """Parses a `models.config` text proto; a bad one raises `ServingConfigError`.

    Example:
    >>> read_model_config_text('model_config_list { config { name: "m" } }').model_config_list.config[0].name
    'm'
    """
    try:
        return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
        raise ServingConfigError(f"Not a valid ModelServerConfig text proto: {e}") from e


def read_model_config(path: str | os.PathLike) -> model_server_config_pb2.ModelServerConfig:
    """Reads a `models.config` file back as a `ModelServerConfig` proto.

    Example:
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "models.config")
    >>> _ = Path(p).write_text('model_config_list { config { name: "m" base_path: "/m" } }')
    >>> read_model_config(p).model_config_list.config[0].base_path
    '/m'
    """
    return read_model_config_text(Path(path).read_text())
