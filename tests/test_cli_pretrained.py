"""`model.trunk: {type: pretrained, ...}` in a run config: a KerasHub encoder under the heads, from the CLI.

The preset is tests/test_pretrained.py's tiny BERT, built and saved by its
`preset` fixture; its vocabulary holds the words of `sentences()`, the
reviews the CSV tables here are made of.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from keras_mtl import config as config_lib
from keras_mtl import saving, training

keras_hub = pytest.importorskip("keras_hub")

# `preset`: the tiny BERT saved as a local preset directory (a session fixture).
from test_pretrained import count, lora_param_count, preset, sentences, tiny_bert  # noqa: E402, F401

ROOT = Path(__file__).resolve().parent.parent
RANK = 2


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """A CSV of made-up reviews: the text and two labels (sentiment, topic)."""
    text, labels = sentences(60)
    path = tmp_path_factory.mktemp("reviews") / "reviews.csv"
    pd.DataFrame({"review": text, **labels}).to_csv(path, index=False)
    return str(path)


def review_config(preset_dir, table, **trunk):
    """A run config on a reviews CSV with a pretrained trunk (LoRA, rank 2, unless `trunk` says otherwise)."""
    return {
        "name": "reviews",
        "data": {"path": table, "batch_size": 16, "features": {"review": "text"}},
        "tasks": [{"name": "sentiment", "type": "binary"}, {"name": "topic", "type": "multiclass", "num_classes": 3}],
        "model": {"trunk": {"type": "pretrained", "preset": preset_dir, "train": "lora", "lora_rank": RANK,
                            "sequence_length": 8, **trunk}},
        "train": {"epochs": 1, "verbose": 0},
        "monitor": {"affinity_every": 0},
    }


def built(raw: dict):
    cfg = config_lib.from_dict(config_lib.Config, raw)
    data, tasks = training.load_data(cfg, echo=lambda line: None)
    return training.build_model(cfg, data, tasks), data


def test_the_config_puts_the_pretrained_encoder_under_the_heads(preset, reviews):
    model, data = built(review_config(preset, reviews))
    encoder = model.get_layer("trunk")
    assert type(encoder).__name__ == "PretrainedEncoder"
    assert (encoder.train, encoder.lora_rank, encoder.pooling) == ("lora", RANK, "cls")
    assert encoder.preprocessor.sequence_length == 8
    # Only the LoRA adapters of the encoder train; the heads sit on its pooled output.
    assert count(encoder.trainable_weights) == lora_param_count(RANK)
    assert all("lora_kernel" in w.path for w in encoder.trainable_weights)
    # The model's one input is the table's raw text column.
    assert list(data.inputs) == ["review"] and data.inputs["review"].dtype == "string"
    assert len(model.inputs) == 1 and model.inputs[0] is data.inputs["review"]
    assert sorted(model.output) == ["sentiment", "topic"]


def test_bundled_text_data_feeds_its_raw_text_and_set_switches_the_trunk(preset):
    # examples/tweets.yaml sets the default trunk's units: --set clears them.
    cfg = config_lib.load(ROOT / "examples" / "tweets.yaml", [
        "model.trunk.type=pretrained", f"model.trunk.preset={preset}", "model.trunk.units=null",
        "model.trunk.train=frozen", "model.trunk.pooling=mean", "model.trunk.sequence_length=8",
        "data.limit=200", "data.batch_size=32",
    ])
    data, tasks = training.load_data(cfg, echo=lambda line: None)
    model = training.build_model(cfg, data, tasks)
    encoder = model.get_layer("trunk")
    assert (encoder.train, encoder.pooling) == ("frozen", "mean") and not encoder.trainable_weights
    out = model.predict(data.sample(4), verbose=0)
    assert {k: v.shape for k, v in out.items()} == {"device": (4, 4), "log_retweets": (4, 1), "log_favorites": (4, 1)}


def test_task_lora_gives_each_task_its_adapters(preset, reviews):
    model, _ = built(review_config(preset, reviews, train="task_lora", lora_rank=3))
    names = [layer.name for layer in model.layers]
    assert {"sentiment_lora", "topic_lora"} <= set(names)
    assert model.get_layer("sentiment_lora").rank == 3  # model.trunk.lora_rank, passed through
    assert not model.get_layer("trunk").trainable_weights  # the adapters are the tasks' own layers


def test_compare_baselines_of_task_lora_are_lora_and_other_architectures_are_refused(preset, reviews):
    # compare builds single-task baselines and --architectures from the config without checking it again.
    import dataclasses

    cfg = config_lib.from_dict(config_lib.Config, review_config(preset, reviews, train="task_lora", lora_rank=None))
    data, tasks = training.load_data(cfg, echo=lambda line: None)
    single = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, architecture="single_task"))
    model = training.build_model(single, data, tasks[:1])
    assert model.get_layer("trunk").train == "lora"  # one task's own adapters: LoRA
    mmoe = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, architecture="mmoe"))
    with pytest.raises(config_lib.ConfigError, match=r"model\.trunk\.train: task_lora .* not 'mmoe'"):
        training.build_model(mmoe, data, tasks)


@pytest.mark.slow
def test_train_lora_from_the_cli_exports_a_model_that_takes_raw_strings(preset, reviews, tmp_path, monkeypatch):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops, for loading the export)

    from keras_mtl.cli import main

    monkeypatch.chdir(tmp_path)
    Path("reviews.yaml").write_text(yaml.safe_dump(review_config(preset, reviews)))
    assert main(["train", "reviews.yaml", "--set", "output.run=lora"]) == 0

    best = saving.load_model("checkpoints/reviews/lora/best.keras")
    encoder = best.get_layer("trunk")
    assert encoder.train == "lora" and count(encoder.trainable_weights) == lora_param_count(RANK)

    export = tf.saved_model.load("saved_models/reviews/1")
    serve = export.signatures["serving_default"]
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.dtype == tf.string
    texts = np.asarray(["the movie was great", "a dull dog sat"], dtype=object)
    served = serve(**{spec.name: tf.constant(texts.astype(str))})
    expected = best.predict({"review": texts}, verbose=0)
    for task in ("sentiment", "topic"):  # a binary task serves one probability per text: shape (n,)
        np.testing.assert_allclose(served[task].numpy().reshape(expected[task].shape), expected[task], atol=1e-5)


@pytest.mark.parametrize(
    "trunk, match",
    [
        ({"units": [8]}, r"model\.trunk\.units does not apply to trunk type 'pretrained'.*tasks\[\]\.tower"),
        ({"dropout": 0.1}, r"model\.trunk\.dropout does not apply to trunk type 'pretrained'"),
        ({"type": "default"}, r"model\.trunk\.preset does not apply to trunk type 'default'.*type: pretrained"),
        ({"train": "adapters"}, r"model\.trunk\.train must be one of \['frozen', 'lora', 'task_lora', 'full'\]"),
        ({"train": "full"}, r"model\.trunk\.lora_rank applies to model\.trunk\.train lora or task_lora, not full"),
        ({"lora_rank": 0}, r"model\.trunk\.lora_rank must be >= 1"),
        ({"pooling": "max"}, r"model\.trunk\.pooling must be one of \['cls', 'mean'\]"),
        ({"sequence_length": 1}, r"model\.trunk\.sequence_length must be >= 2"),
        ({"preset": None}, r"model\.trunk\.preset is required for trunk type 'pretrained'"),
        ({"preset": "no/such/preset"}, r"model\.trunk\.preset: .*'no/such/preset' does not exist"),
        ({"preprocessor": "no/such/tokenizer"}, r"model\.trunk\.preprocessor: .*'no/such/tokenizer' does not exist"),
        ({"trunk_units": [8]}, r"Unknown config key 'model\.trunk\.trunk_units'"),
    ],
)
def test_bad_trunk_keys_are_named(preset, reviews, trunk, match):
    with pytest.raises(config_lib.ConfigError, match=match):
        config_lib.from_dict(config_lib.Config, review_config(preset, reviews, **trunk))


def test_a_preset_without_a_tokenizer_is_named_when_the_model_is_built(reviews, tmp_path):
    tiny_bert().save_to_preset(str(tmp_path))  # the backbone only: no tokenizer to read text with
    with pytest.raises(config_lib.ConfigError, match=r"model\.trunk: .*could not load the preprocessor"):
        built(review_config(str(tmp_path), reviews))


def test_a_directory_that_is_not_a_preset_is_named(preset, reviews, tmp_path):
    with pytest.raises(config_lib.ConfigError, match=r"model\.trunk\.preset: .*is not a KerasHub backbone preset"):
        config_lib.from_dict(config_lib.Config, review_config(str(tmp_path), reviews))


@pytest.mark.parametrize(
    "model, match",
    [
        ({"architecture": "mmoe"}, r"model\.trunk\.train: task_lora .* shared_bottom only, got 'mmoe'"),
        ({"init_from": "checkpoints/old/run"}, r"model\.trunk\.type: pretrained builds a new trunk, but model\.init_from"),
    ],
)
def test_model_keys_that_clash_with_the_pretrained_trunk_are_named(preset, reviews, model, match):
    raw = review_config(preset, reviews, train="task_lora" if "architecture" in model else "lora")
    if "architecture" in model:
        del raw["model"]["trunk"]["lora_rank"]
    raw["model"].update(model)
    with pytest.raises(config_lib.ConfigError, match=match):
        config_lib.from_dict(config_lib.Config, raw)


def test_default_trunk_keys_keep_their_defaults_and_meaning():
    trunk = config_lib.from_dict(config_lib.Config, {"name": "t"}).model.trunk
    assert (trunk.type, trunk.units, trunk.dropout) == ("default", [128, 64], 0.0)
    trunk = config_lib.from_dict(config_lib.Config, {"name": "t", "model": {"trunk": {"units": [8], "dropout": 0.5}}}).model.trunk
    assert (trunk.type, trunk.units, trunk.dropout) == ("default", [8], 0.5)


def test_a_table_with_other_columns_is_refused_naming_them(preset, tmp_path):
    text, labels = sentences(40)
    path = tmp_path / "mixed.csv"
    pd.DataFrame({"review": text, "stars": np.arange(40.0), **labels}).to_csv(path, index=False)
    raw = review_config(preset, str(path))
    with pytest.raises(config_lib.ConfigError) as e:
        built(raw)
    message = str(e.value)
    assert "model.trunk.type pretrained reads one column of raw text" in message
    assert "review (text), stars (numeric)" in message
    assert "data.features: {review: text, stars: drop}" in message
    # The fix the message gives works.
    raw["data"]["features"] = {"review": "text", "stars": "drop"}
    model, _ = built(raw)
    assert type(model.get_layer("trunk")).__name__ == "PretrainedEncoder"


def test_a_text_column_read_as_categories_is_refused_with_the_fix(preset, reviews):
    raw = review_config(preset, reviews)
    del raw["data"]["features"]  # 60 short reviews: inferred as categories, not text
    with pytest.raises(config_lib.ConfigError, match=r"review \(categorical\).*data\.features: \{review: text\}"):
        built(raw)


def test_a_run_saved_before_trunk_type_existed_still_resumes(tmp_path):
    cfg = config_lib.from_dict(config_lib.Config, {"name": "t"})
    saved = config_lib.to_dict(cfg)
    del saved["model"]["trunk"]["type"]  # a config.yaml written before the key existed
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(saved))
    training._check_same_config(cfg, path, "r")  # no error: the missing key is at its default
    changed = config_lib.from_dict(config_lib.Config, {"name": "t", "model": {"trunk": {"units": [8]}}})
    with pytest.raises(config_lib.ConfigError, match=r"model\.trunk\.units"):
        training._check_same_config(changed, path, "r")


def _docs_blocks(language: str) -> list[str]:
    """The ```<language> blocks of docs/cli.md's section on the pretrained trunk."""
    page = (ROOT / "docs" / "cli.md").read_text()
    section = page.split("### A pretrained text encoder", 1)[1].split("\n## ", 1)[0]
    return [block.split("\n", 1)[1] for block in section.split("```")[1::2] if block.startswith(language)]


def test_the_docs_config_and_command_are_valid(preset):
    import shlex

    (example,) = _docs_blocks("yaml")
    raw = yaml.safe_load(example)
    assert raw["model"]["trunk"]["type"] == "pretrained"
    raw["model"]["trunk"]["preset"] = preset  # the docs' presets/bert_small stands for a real one
    trunk = config_lib.from_dict(config_lib.Config, raw).model.trunk
    assert trunk.pretrained_kwargs() == {"train": "lora", "lora_rank": 8, "pooling": "cls", "sequence_length": 64}

    (command,) = _docs_blocks("bash")
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:3] == ["keras-mtl", "train", "examples/tweets.yaml"]
    overrides = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"]
    overrides = [f"model.trunk.preset={preset}" if o.startswith("model.trunk.preset=") else o for o in overrides]
    trunk = config_lib.load(ROOT / argv[2], overrides).model.trunk
    assert (trunk.type, trunk.units, trunk.train, trunk.sequence_length) == ("pretrained", None, "lora", 64)
