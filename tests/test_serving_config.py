"""models.config and batching parameters for TF Serving: written as protos, parsed back, checked against disk."""

import os

import keras
import numpy as np
import pytest

import keras_mtl as mtl
from keras_mtl import cli, export
from keras_mtl.export import batching as batching_lib
from keras_mtl.export import ServingConfigError, model_config, model_entry, read_model_config
from keras_mtl.export.serving_config import read_model_config_text


def make_versions(base, *numbers, pb=True):
    """Version folders as an export leaves them (only saved_model.pb matters here)."""
    for n in numbers:
        os.makedirs(base / str(n), exist_ok=True)
        if pb:
            (base / str(n) / "saved_model.pb").write_bytes(b"")
    return base


@pytest.fixture
def census_dir(tmp_path):
    return make_versions(tmp_path / "census", 1, 2, 3)


def test_labels_round_trip_through_the_protos(census_dir, tmp_path):
    entry = model_entry("census", census_dir, labels={"stable": 1, "canary": 2})
    text = model_config(entry, tmp_path / "models.config")
    assert (tmp_path / "models.config").read_text() == text
    (parsed,) = read_model_config(tmp_path / "models.config").model_config_list.config
    assert parsed.name == "census"
    assert parsed.base_path == str(census_dir.resolve())
    assert parsed.model_platform == "tensorflow"
    assert list(parsed.model_version_policy.specific.versions) == [1, 2]  # the labelled ones
    assert dict(parsed.version_labels) == {"stable": 1, "canary": 2}
    assert 'version_labels {\n      key: "canary"\n      value: 2\n    }' in text


@pytest.mark.parametrize(
    "policy, field, expected",
    [
        ({}, "latest", "num_versions: 1"),
        ({"latest": 2}, "latest", "num_versions: 2"),
        ({"versions": [3, 1]}, "specific", "versions: 1\n        versions: 3"),
        ({"all_versions": True}, "all", "model_version_policy {\n      all {\n      }"),
    ],
)
def test_version_policies(census_dir, tmp_path, policy, field, expected):
    entry = model_entry("census", census_dir, **policy)
    assert entry.model_version_policy.WhichOneof("policy_choice") == field
    assert expected in model_config(entry, tmp_path / "models.config")


def test_several_models_and_a_server_side_base_path(census_dir, tmp_path):
    other = make_versions(tmp_path / "tweets", 7)
    text = model_config(
        [
            model_entry("census", census_dir, server_base_path="/models/census", latest=3, labels={"stable": 2}),
            model_entry("tweets", other),
        ],
        tmp_path / "configs" / "models.config",
    )
    names = [c.name for c in read_model_config_text(text).model_config_list.config]
    assert names == ["census", "tweets"]
    assert 'base_path: "/models/census"' in text


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("bad name", {}, "Invalid model name 'bad name'"),
        ("census", {"labels": {"canary": 5}}, r"label 'canary' points to version 5, which is not under .*; it has versions \[1, 2, 3\]"),
        ("census", {"latest": 1, "labels": {"stable": 1}}, r"label 'stable' points to version 1, which the policy latest 1 \(versions \[3\]\) does not load"),
        ("census", {"versions": [2, 3], "labels": {"stable": 1}}, r"policy specific versions \[2, 3\] does not load"),
        ("census", {"latest": 1, "versions": [1]}, "choose one version policy"),
        ("census", {"latest": 0}, "latest must be an integer >= 1, got 0"),
        ("census", {"versions": [4, 1]}, r"versions \[4\] are not under"),
        ("census", {"versions": []}, "versions must be a non-empty list of integers"),
        ("census", {"labels": {"1st": 1}}, "invalid label '1st'"),
        ("census", {"labels": {"stable": "2"}}, "label 'stable' must map to an integer version, got '2'"),
    ],
)
def test_bad_entries_name_the_problem(census_dir, name, kwargs, message):
    with pytest.raises(ServingConfigError, match=message):
        model_entry(name, census_dir, **kwargs)


def test_base_path_without_versions_or_saved_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ServingConfigError, match="Model 'm': no version folders under"):
        model_entry("m", tmp_path / "empty")
    make_versions(tmp_path / "half", 1)
    make_versions(tmp_path / "half", 2, pb=False)
    with pytest.raises(ServingConfigError, match="version 2 under .* has no saved_model.pb"):
        model_entry("m", tmp_path / "half")
    assert model_entry("m", tmp_path / "half", versions=[1]).name == "m"


def test_bad_model_lists(census_dir, tmp_path):
    entry = model_entry("census", census_dir)
    with pytest.raises(ServingConfigError, match=r"Model name\(s\) \['census'\] appear more than once"):
        model_config([entry, entry], tmp_path / "models.config")
    with pytest.raises(ServingConfigError, match="at least one model"):
        model_config([], tmp_path / "models.config")
    assert not (tmp_path / "models.config").exists()


def test_batching_file_round_trips(census_dir, tmp_path):
    model_config(
        model_entry("census", census_dir),
        tmp_path / "models.config",
        batching={"max_batch_size": 32, "batch_timeout_micros": 2000, "num_batch_threads": 4,
                  "max_enqueued_batches": 100, "allowed_batch_sizes": [8, 16, 32]},
    )
    text = (tmp_path / "batching.config").read_text()
    assert text.startswith("max_batch_size {\n  value: 32\n}\n")
    params = batching_lib.read_batching_parameters_text(text)
    assert params.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"
    assert (params.batch_timeout_micros.value, params.num_batch_threads.value) == (2000, 4)
    assert (params.max_enqueued_batches.value, list(params.allowed_batch_sizes)) == (100, [8, 16, 32])


@pytest.mark.parametrize(
    "batching, message",
    [
        ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1, got 0"),
        ({"max_batch_size": 8, "batch_timeout_micros": -1}, "batch_timeout_micros must be an integer >= 0, got -1"),
        ({"max_batch_size": 8, "num_batch_threads": True}, "num_batch_threads must be an integer >= 1, got True"),
        ({"max_batch_size": 8, "max_enqueued_batches": 0}, "max_enqueued_batches must be an integer >= 1"),
        ({"max_batch_size": 8, "allowed_batch_sizes": [4, 2, 8]}, r"allowed_batch_sizes must be increasing integers >= 1, got \[4, 2, 8\]"),
        ({"max_batch_size": 8, "allowed_batch_sizes": [2, 4]}, r"the last of allowed_batch_sizes \[2, 4\] must equal max_batch_size \(8\)"),
        ({"max_batch_size": 8, "timeout": 5}, r"Unknown batching parameter\(s\) \['timeout'\]"),
        ({"num_batch_threads": 2}, "Batching needs max_batch_size"),
        ("max_batch_size=8", "batching must be a BatchingParameters or a dict, got str"),
    ],
)
def test_bad_batching_parameters(census_dir, tmp_path, batching, message):
    with pytest.raises(ServingConfigError, match=message):
        model_config(model_entry("census", census_dir), tmp_path / "models.config", batching=batching)
    assert not (tmp_path / "batching.config").exists() and not (tmp_path / "models.config").exists()


def test_unparsable_files_raise_config_errors(tmp_path):
    (tmp_path / "models.config").write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(ServingConfigError, match="Not a valid ModelServerConfig text proto"):
        read_model_config(tmp_path / "models.config")
    with pytest.raises(ServingConfigError, match="Not a valid BatchingParameters text proto"):
        batching_lib.read_batching_parameters_text("max_batch_size: 'many'")


@pytest.mark.slow
def test_warmup_batches_must_fit_max_batch_size(tmp_path):
    model = mtl.models.shared_bottom(keras.Input((3,), name="x"), [mtl.tasks.Binary("a")])
    base = tmp_path / "m"
    export.export_saved_model(model, base, warmup_samples={"x": np.zeros((8, 3))})
    entry = model_entry("m", base)
    with pytest.raises(ServingConfigError, match="Model 'm' version 1: its warmup requests have 8 rows, more than max_batch_size 4"):
        model_config(entry, tmp_path / "models.config", batching={"max_batch_size": 4})
    model_config(entry, tmp_path / "models.config", batching=export.batching_parameters(max_batch_size=8))
    assert (tmp_path / "batching.config").is_file()


def test_cli_serving_config(census_dir, tmp_path, capsys):
    code = cli.main([
        "serving-config", "census", str(census_dir), "--label", "stable=1", "--label", "canary=2",
        "--max-batch-size", "16", "--num-batch-threads", "2",
    ])
    assert code == 0
    out = capsys.readouterr().out
    config = tmp_path / "models.config"  # beside the model's base directory
    assert f"--model_config_file={config}" in out and "--enable_batching" in out
    (entry,) = read_model_config(config).model_config_list.config
    assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
    params = batching_lib.read_batching_parameters_text((tmp_path / "batching.config").read_text())
    assert (params.max_batch_size.value, params.num_batch_threads.value) == (16, 2)

    assert cli.main(["serving-config", "census", str(census_dir), "-o", str(tmp_path / "x.config"), "--latest", "2"]) == 0
    assert read_model_config(tmp_path / "x.config").model_config_list.config[0].model_version_policy.latest.num_versions == 2


def test_cli_serving_config_errors(census_dir, capsys):
    assert cli.main(["serving-config", "census", str(census_dir), "--label", "canary=9"]) == 2
    assert "label 'canary' points to version 9, which is not under" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["serving-config", "census", str(census_dir), "--label", "stable"])
    assert e.value.code == 2 and "expected LABEL=VERSION" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["serving-config", "census", str(census_dir), "--latest", "1", "--versions", "1"])
    assert "not allowed with argument" in capsys.readouterr().err
