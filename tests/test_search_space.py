"""Search spaces as conf/search/ writes them: parsed into distributions, malformed leaves
refused in one line, enqueued trials flattened, and the study's name (which decides
whether a command continues a search or starts another)."""

from __future__ import annotations

import math
from dataclasses import replace

import optuna
import pytest
from omegaconf import OmegaConf

from ssgan.cli import compose_config
from ssgan.config import PrunerConfig, SearchConfig, TuneAppConfig, typed
from ssgan.errors import ConfigError
from ssgan.sweeps.space import Param, enqueued_values, format_value, parse_space, study_name

pytestmark = pytest.mark.unit

LR = {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}


def test_a_nested_space_names_dotted_keys_and_their_distributions() -> None:
    space = {
        "train": {"lr": LR},
        "model": {
            "z_size": {"type": "int", "low": 8, "high": 32, "step": 8},
            "name": {"type": "categorical", "choices": ["tutorial", "improved_gan"]},
        },
    }
    dist = optuna.distributions
    assert parse_space(OmegaConf.create(space)) == [
        Param("train.lr", dist.FloatDistribution(1e-4, 1e-3, log=True)),
        Param("model.z_size", dist.IntDistribution(8, 32, step=8)),
        Param("model.name", dist.CategoricalDistribution(["tutorial", "improved_gan"])),
    ]
    assert [p.corner_values() for p in parse_space(space)] == [
        [1e-4, 1e-3], [8, 32], ["tutorial", "improved_gan"]
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, ".low=0.0: a log range needs"),
        ({**LR, "step": 1e-4}, "log and step cannot be combined"),
        ({"type": "int", "low": 1, "high": 9, "step": -2}, ".step=-2 must be a positive number"),
        ({"type": "float", "low": 0.1}, "search.space.train.x.high is missing"),
        ({"type": "int", "low": 1, "high": 9, "steps": 2}, "unknown key 'steps' for type int"),
        ({"type": "categorical", "choices": [[1, 2]]}, "every choice must be a single value"),
        (0.001, "search.space.train.x: expected a mapping such as"),
        ({}, "search.space.train.x: empty; name at least one key"),
    ],
)
def test_a_malformed_leaf_is_one_line_naming_it(leaf: object, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_space({"train": {"x": leaf}})
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_enqueued_trials_become_dotted_values() -> None:
    z_size = {"type": "int", "low": 8, "high": 32}
    params = parse_space({"train": {"lr": LR}, "model": {"z_size": z_size}})
    search = SearchConfig(enqueue=[{"train": {"lr": 5e-4}, "model": {"z_size": 16}}])
    assert enqueued_values(search, params) == [{"train.lr": 5e-4, "model.z_size": 16}]
    with pytest.raises(ConfigError, match=r"search.enqueue\[0\]: expected a mapping"):
        enqueued_values(SearchConfig(enqueue=[5e-4]), params)


def test_a_bigger_budget_or_more_workers_continue_the_study_another_space_does_not() -> None:
    search = SearchConfig(name="mine", n_trials=3, space={"train": {"lr": LR}})
    name = study_name(search, ["experiment=smoke", "train.epochs=2"])
    assert name.startswith("mine-") and len(name) == len("mine-") + 10
    grown = replace(search, n_trials=30, workers=4, threads_per_worker=2,
                    storage="sqlite:///optuna.db")  # fmt: skip
    assert study_name(grown, ["train.epochs=2", "experiment=smoke"]) == name
    same_line = ["experiment=smoke", "train.epochs=2"]
    no_pruner = replace(search, pruner=PrunerConfig(name="none"))
    wider = replace(search, space={"train": {"lr": {**LR, "high": 1e-2}}})
    for other in (
        study_name(no_pruner, same_line),
        study_name(wider, same_line),
        study_name(search, ["experiment=smoke", "train.epochs=3"]),
    ):
        assert other != name


def test_a_study_keeps_its_name_across_versions() -> None:
    """The name is the study's key in its storage: the same command must find the study
    it began (pinned: the name conf/search/ssgan_lr.yaml has had since its unlabelled
    weight moved from train.* to method.*, which made it another search space)."""
    search = typed(compose_config("tune", ["search=ssgan_lr"]), TuneAppConfig).search
    assert study_name(search, ["experiment=smoke", "train.epochs=2"]) == "ssgan_lr-bdeab603fa"


def test_values_are_written_as_overrides_with_every_digit() -> None:
    assert [format_value(v) for v in (1 / 3, 1e-4, 3, True, "tutorial")] == [
        "0.3333333333333333", "0.0001", "3", "True", "tutorial"
    ]  # fmt: skip
    assert format_value(math.inf) == "inf" and format_value(math.nan) == "nan"
