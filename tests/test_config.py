"""Bad overrides stop at once with one clear line, exit 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssgan.cli import check_overrides, compose_config
from ssgan.config import flatten, validate_train_config
from ssgan.errors import ConfigError
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.z_sise=3", ["unknown key", "model.z_sise"]),
        ("model.z_size=abc", ["model.z_size", "'abc'", "Integer"]),
        ("model.z_size=0", ["model.z_size=0", "allowed >= 1"]),
        ("data.num_labeled=60000", ["data.num_labeled=60000", "larger than the data", "45000"]),
        ("data.num_labeled=5", ["data.num_labeled=5", ">= 10"]),
        ("train.lr=-0.001", ["train.lr=-0.001", "allowed > 0.0"]),
        ("train.mode=unsupervised", ["train.mode=unsupervised", "ssgan, supervised"]),
        ("data=mnist", ["data=mnist", "available: svhn, synthetic"]),
        ("data.verify=maybe", ["data.verify", "'maybe'", "bool"]),
        ("+extra_key=1", ["unknown key 'extra_key'"]),
        ("model.z_size=64,0", ["model.z_size=0", "sweep value"]),
    ],
)
def test_bad_override_is_one_clear_line(override: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        check_overrides("config", [override], validate_train_config)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_defaults_and_presets_compose_and_validate() -> None:
    for overrides in ([], ["experiment=smoke"], ["model=improved_gan", "data=svhn"]):
        check_overrides("config", overrides, validate_train_config)
    cfg = compose_config("config", ["model.z_size=64"])
    params = flatten(cfg)
    assert params["model.z_size"] == 64
    assert params["train.lr"] == pytest.approx(3e-4)
    assert params["train.beta1"] == pytest.approx(0.5)
    assert params["data.num_labeled"] == 1000


def test_svhn_label_budget_checked_against_its_size() -> None:
    with pytest.raises(ConfigError, match="svhn training pool holds 68257"):
        check_overrides("config", ["data=svhn", "data.num_labeled=70000"], validate_train_config)
    # The extra images are unlabelled: they do not raise the label budget.
    with pytest.raises(ConfigError, match="svhn training pool holds 68257"):
        check_overrides(
            "config",
            ["data=svhn", "data.num_labeled=70000", "data.use_extra=true"],
            validate_train_config,
        )
    check_overrides("config", ["data=svhn", "data.num_labeled=68257"], validate_train_config)


def test_cli_bad_override_exits_2_without_traceback_or_files(tmp_path: Path) -> None:
    result = run_cli("ssgan.train", "model.z_size=0", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: model.z_size=0 is out of range: allowed >= 1 and <= 4096"]
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # no mlruns/, no outputs/


def test_cli_help_and_cfg_show_groups_and_keys(tmp_path: Path) -> None:
    shown = run_cli("ssgan.train", "--help", cwd=tmp_path)
    assert shown.returncode == 0
    assert "experiment: improved_gan_svhn, label_budget, smoke" in shown.stdout
    assert "model: improved_gan, tutorial" in shown.stdout
    job = run_cli("ssgan.train", "--cfg", "job", "experiment=smoke", cwd=tmp_path)
    assert job.returncode == 0
    assert "z_size: 16" in job.stdout and "num_labeled: 100" in job.stdout
    assert list(tmp_path.iterdir()) == []
