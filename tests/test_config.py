"""Run configs: every bad key, type and value gives an error naming the key."""

import dataclasses

import pytest
import yaml

from keras_mtl import config
from keras_mtl.config import ConfigError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_example_config_loads():
    cfg = config.load("examples/census.yaml")
    assert cfg.name == "census" and cfg.train.epochs == 5
    assert [t.name for t in cfg.tasks] == ["income", "never_married"]
    assert cfg.model.trunk.units == [128, 64]


def test_overrides():
    cfg = config.load(
        "examples/census.yaml",
        ["train.epochs=1", "data.limit=100", "tasks.0.weight=2.5", "model.trunk.units=[4, 2]"],
    )
    assert cfg.train.epochs == 1 and cfg.data.limit == 100
    assert cfg.tasks[0].weight == 2.5 and cfg.model.trunk.units == [4, 2]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", r"Unknown config key 'train.epoch'; did you mean 'train.epochs'\?"),
        ("trian.epochs=3", r"Unknown config key 'trian'; did you mean 'train'\?"),
        ("train.epochs=three", r"train.epochs must be an integer, got str 'three'"),
        ("train.epochs=0", r"^train.epochs must be >= 1, got 0"),
        ("train.epochs=true", r"train.epochs must be an integer, got bool"),
        ("train.learning_rate=-1", r"learning_rate must be > 0"),
        ("train.optimizer=adagrad", r"train.optimizer must be one of \[.*'adam', 'adamw', .*'lazy_adam', .*'sgd'.*\], got 'adagrad'"),
        ("train.weighting=magic", r"train.weighting: unknown method 'magic'"),
        ("data.dataset=mnist", r"data.dataset must be one of \[.*'census_income', 'fashion_mnist', .*\], got 'mnist'"),
        ("data.validation_fraction=1.0", r"validation_fraction must be in \(0, 1\)"),
        ("data.batch_size=0", r"batch_size must be >= 1"),
        ("model.architecture=mmoe_x", r"model.architecture must be one of"),
        ("model.trunk.units=[]", r"model.trunk.units must be a non-empty list"),
        ("model.trunk.units=[8, x]", r"model.trunk.units\[1\] must be an integer"),
        ("model.trunk=5", r"model.trunk must be a mapping"),
        ("tasks.0.type=rankings", r"tasks\[0\].type must be one of"),
        ("tasks.0.weight=-1", r"tasks\[0\].weight must be >= 0"),
        ("tasks.1.name=income", r"tasks\[1\].name: duplicate task name 'income'"),
        ("tasks.0.name=bad name", r"tasks\[0\].name: Invalid task name 'bad name'"),
        ("tasks.0.colour=red", r"Unknown config key 'tasks\[0\].colour'"),
        ("name=../etc", r"name: Invalid run config name '../etc'"),
        ("model.architecture=single_task", r"single_task trains one task: list exactly one entry"),
        ("tasks.5.weight=1", r"--set tasks.5.weight: tasks has no item '5'"),
        ("train", r"--set expects key=value"),
        ("tasks.0.type=multiclass", r"tasks\[0\].num_classes is required"),
        ('tasks.0={"name": "k", "type": "multiclass", "num_classes": 0}', r"tasks\[0\]: Task 'k': num_classes must be >= 2, got 0"),
        ("tasks.0.num_classes=3", r"Task 'income': num_classes does not apply to a binary task; remove it\.$"),
        ('tasks.0={"name": "k", "type": "multilabel", "num_labels": 3, "num_classes": 2}',
         r"Task 'k': num_classes does not apply to a multilabel task \(it takes num_labels\)\.$"),
        ("train.verbose=true", r"train.verbose must be one of \['auto', 0, 1, 2\], got True"),
        ("train.jit_compile=1", r"train.jit_compile must be one of \['auto', True, False\], got 1"),
        ("train.steps_per_execution=0", r"train.steps_per_execution must be 'auto' or an integer >= 1, got 0\.$"),
        ("train.steps_per_execution=fast", r"train.steps_per_execution must be 'auto' or an integer >= 1, got 'fast'"),
        ("train.steps_per_execution=true", r"train.steps_per_execution must be 'auto' or an integer >= 1, got True"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        config.load("examples/census.yaml", [override])


@pytest.mark.parametrize("raw, value", [("false", False), ("true", True), ("auto", "auto")])
def test_jit_compile_can_be_set_from_the_config(raw, value):
    assert config.load("examples/census.yaml", [f"train.jit_compile={raw}"]).train.jit_compile == value


@pytest.mark.parametrize("raw, value", [("auto", "auto"), ("8", 8)])
def test_steps_per_execution_can_be_set_from_the_config(raw, value):
    cfg = config.load("examples/census.yaml", [f"train.steps_per_execution={raw}"])
    assert cfg.train.steps_per_execution == value
    assert config.load("examples/census.yaml").train.steps_per_execution == "auto"  # the library's default


def test_all_zero_weights(tmp_path):
    path = write(tmp_path, "name: x\ntasks:\n- {name: a, type: binary, weight: 0}\n")
    with pytest.raises(ConfigError, match="every task has weight 0"):
        config.load(path)


def test_multiclass_needs_num_classes(tmp_path):
    path = write(tmp_path, "name: x\ntasks:\n- {name: a, type: multiclass}\n")
    with pytest.raises(ConfigError, match=r"tasks\[0\].num_classes is required for a multiclass task"):
        config.load(path)


def test_missing_name_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="Missing required config key 'name'"):
        config.load(write(tmp_path, "train: {epochs: 1}\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        config.load(write(tmp_path, "- a\n- b\n"))


def test_yaml_is_read_safely(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(path)


def test_task_config_builds_tasks():
    cfg = config.load("examples/census.yaml", ["tasks.0.weight=2", "tasks.0.tower=[4]"])
    task = cfg.tasks[0].build()
    assert (task.name, task.weight, task.tower) == ("income", 2.0, [4])


def test_to_dict_round_trips():
    cfg = config.load("examples/census.yaml")
    again = config.from_dict(config.Config, yaml.safe_load(yaml.safe_dump(config.to_dict(cfg))))
    assert again == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.architecture=mmoe", "model.num_experts=0"], r"^model.num_experts must be >= 1, got 0"),
        (["model.architecture=cgc", "model.num_task_experts=-1"], r"^model.num_task_experts must be >= 0"),
        (["model.architecture=ple", "model.num_levels=0"], r"^model.num_levels must be >= 1, got 0"),
        (["model.architecture=mmoe", "model.expert_units=[]"], r"model.expert_units must be a non-empty list"),
        (["model.architecture=soft_sharing", "model.penalty=-0.1"], r"model.penalty must be a finite number >= 0"),
        (["model.architecture=soft_sharing", "model.penalty=x"], r"model.penalty must be a number, got str"),
        (["model.architecture=mmoe", "model.num_levels=2"],
         r"model.num_levels does not apply to architecture 'mmoe', which takes model.num_experts, model.expert_units"),
        (["model.num_experts=4"], r"model.num_experts does not apply to architecture 'shared_bottom', which takes no hyper"),
        (["model.architecture=cross_stitch", "tasks=[{name: a, type: binary}]"], r"cross_stitch ties the columns of two or more tasks"),
        (["model.num_expert=4"], r"Unknown config key 'model.num_expert'; did you mean 'model.num_experts'\?"),
    ],
)
def test_architecture_hyperparameters_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load("examples/census.yaml", overrides)


def test_architecture_hyperparameters_reach_the_factory():
    from keras_mtl import models

    expected = {  # read off each factory's arguments
        "shared_bottom": (),
        "single_task": (),
        "mmoe": ("num_experts", "expert_units"),
        "cgc": ("num_experts", "num_task_experts", "expert_units"),
        "ple": ("num_levels", "num_experts", "num_task_experts", "expert_units"),
        "cross_stitch": ("column_units",),
        "soft_sharing": ("column_units", "penalty"),
    }
    assert set(expected) <= set(models.available())
    assert {arch: config.ModelConfig(architecture=arch).takes() for arch in expected} == expected
    for field in config.ModelConfig.HYPERPARAMETERS:  # every key some factory takes is a ModelConfig field
        assert field in {f.name for f in dataclasses.fields(config.ModelConfig)}
    cfg = config.load(
        "examples/census.yaml", ["model.architecture=ple", "model.num_levels=3", "model.expert_units=[8]"]
    )
    assert cfg.model.hyperparameters() == {"num_levels": 3, "expert_units": [8]}


MIXTURE = "examples/tweets_news_mixture.yaml"


def test_mixture_example_loads():
    cfg = config.load(MIXTURE)
    assert cfg.data.dataset is None and sorted(cfg.data.sources) == ["news", "tweets"]
    assert cfg.data.sources["tweets"] == config.SourceConfig("trump_tweets", ["device"])
    assert repr(cfg.data.sampling.build(cfg.train.epochs)) == "Temperature(temperature=2.0)"
    assert config.from_dict(config.Config, {"name": "x"}).data.dataset == "census_income"


@pytest.mark.parametrize("overrides, message", [
    (["data.sources.tweets.datset=x"], "Unknown config key 'data.sources.tweets.datset'; did you mean 'data.sources.tweets.dataset'?"),
    (["data.sampling.temprature=3"], "did you mean 'data.sampling.temperature'?"),
    (["data.sources.news.dataset=imdb"], "data.sources.news.dataset must be one of"),
    (["data.sources.news.tasks=coarse"], "data.sources.news.tasks must be a list"),
    (["data.sources.news.tasks=[]"], "data.sources.news.tasks must be a non-empty list"),
    (["data.sources.news.limit=0"], "data.sources.news.limit must be >= 1"),
    (["data.sources=[1]"], "data.sources must be a mapping"),
    (["data.sources.news=3"], "data.sources.news must be a mapping"),
    (["data.sampling.name=uniform"], "data.sampling.temperature does not apply to sampling 'uniform', which takes no options"),
    (["data.sampling.temperature=-1"], "data.sampling: temperature must be a finite number > 0"),
    (["data.sampling.temperature=hot"], "data.sampling.temperature must be a number, got str 'hot'"),
    (["data.sampling={name: weights}"], "data.sampling.weights is required for sampling 'weights'"),
    (["data.sampling={name: weights, weights: {tweets: 1}}"], "data.sampling.weights must name exactly the sources ['news', 'tweets']"),
    (["data.sampling={name: weights, weights: {tweets: 1, news: x}}"], "data.sampling.weights.news must be a number"),
    (["data.sampling={name: annealed, final_alpha: 2}"], "data.sampling: Annealed: final_alpha must be in [0, 1]"),
    (["data.dataset=census_income"], "data.dataset and data.sources exclude each other"),
    (["data.examples_per_epoch=0"], "data.examples_per_epoch must be >= 1"),
    (["data.sources={}"], "data.sampling applies to a mixture: set data.sources too"),
])
def test_mixture_keys_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        config.load(MIXTURE, overrides)
    assert message in str(e.value)


def test_sampling_builds_every_strategy():
    build = lambda **kw: repr(config.SamplingConfig(**kw).build(epochs=4))
    assert build() == "Proportional()" and build(name="uniform") == "Uniform()"
    assert build(name="annealed") == "Annealed(epochs=4, final_alpha=0.2)"  # spans train.epochs
    assert build(name="weights", weights={"a": 3.0, "b": 1.0}) == "Weights(weights={'a': 3.0, 'b': 1.0})"


# ------------------------------------------------------- registered names
@pytest.fixture
def own_registrations(monkeypatch):
    """Registrations made by a test are undone after it (the registries are process-wide)."""
    from keras_mtl import models
    from keras_mtl.data import datasets

    for table in (models._ARCHITECTURES, datasets._DATASETS):
        monkeypatch.setattr(table, "_items", dict(table._items))


def register_own(calls):
    """Registers an architecture `two_experts` (MMoE with 2 experts) and a dataset `census_sample` (300 rows)."""
    import keras_mtl as mtl

    @mtl.models.register("two_experts")
    def two_experts(inputs, tasks, trunk=None, *, expert_units=(8,)):
        calls.append(("two_experts", list(expert_units)))
        return mtl.models.mmoe(inputs, tasks, trunk, num_experts=2, expert_units=expert_units, name="two_experts")

    @mtl.data.datasets.register("census_sample")
    def census_sample(batch_size=64, validation_fraction=0.1, limit=None, seed=0):
        calls.append(("census_sample", batch_size))
        return mtl.data.census_income(batch_size=batch_size, validation_fraction=validation_fraction, limit=300, seed=seed)


OWN = """name: own
data: {dataset: census_sample, batch_size: 32}
model: {architecture: two_experts, expert_units: [4], trunk: {units: [8]}}
train: {epochs: 1, verbose: 0}
output: {run: r1}
"""


@pytest.mark.slow
def test_a_registered_architecture_and_dataset_load_from_yaml(tmp_path, own_registrations):
    from keras_mtl import training

    path = write(tmp_path, OWN)
    with pytest.raises(ConfigError, match=r"data.dataset must be one of \[.*\], got 'census_sample'"):
        config.load(path)  # not registered yet
    calls = []
    register_own(calls)
    cfg = config.load(path)
    assert cfg.model.takes() == ("expert_units",) and cfg.model.hyperparameters() == {"expert_units": [4]}
    assert "two_experts" in config.choices()["model.architecture"]
    with pytest.raises(ConfigError, match=r"model.num_experts does not apply to architecture 'two_experts', which takes model.expert_units"):
        config.load(path, ["model.num_experts=3"])
    data, tasks = training.load_data(cfg, echo=lambda line: None)
    model = training.build_model(cfg, data, tasks)
    assert calls == [("census_sample", 32), ("two_experts", [4])]
    assert model.name == "two_experts" and model.get_layer("income_gate").num_experts == 2


@pytest.mark.slow
def test_keras_mtl_train_runs_a_registered_architecture_and_dataset(tmp_path, monkeypatch, own_registrations):
    from keras_mtl import cli

    calls = []
    register_own(calls)
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, OWN)
    assert cli.main(["train", str(path)]) == 0
    assert calls == [("census_sample", 32), ("two_experts", [4])]
    assert (tmp_path / "checkpoints" / "own" / "r1" / "best.keras").is_file()
