"""Bad overrides stop at once with one clear line, exit 2 and nothing written."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from ssgan.cli import check_overrides, compose_config, default_tracking
from ssgan.config import (
    DataConfig,
    ModelConfig,
    RenderConfig,
    SearchConfig,
    TrackingConfig,
    TrainAppConfig,
    TrainConfig,
    flatten,
    typed,
)
from ssgan.config_checks import (
    validate_data_stats_config,
    validate_train_config,
)
from ssgan.errors import ConfigError
from ssgan.serving.promote_checks import validate_promote_config
from ssgan.sweeps.space import check_tune_config
from ssgan.training.loop_options import LoopOptions
from tests.helpers.processes import run_cli

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.z_sise=3", ["unknown key", "model.z_sise"]),
        ("model.z_size=abc", ["model.z_size", "'abc'", "Integer"]),
        ("model.z_size=0", ["model.z_size=0", "allowed >= 1"]),
        ("data.num_labeled=60000", ["data.num_labeled=60000", "larger than the data", "45000"]),
        ("data.num_labeled=5", ["data.num_labeled=5", ">= 10"]),
        ("train.lr=-0.001", ["train.lr=-0.001", "allowed > 0.0"]),
        ("train.cpu_replicas=-1", ["train.cpu_replicas=-1", "allowed >= 0 and <= 64"]),
        ("train.mode=supervised", ["train.mode was removed", "method=<name>", "fixmatch"]),
        ("method=pimodel", ["method=pimodel", "available: badgan, fixmatch, mean_teacher"]),
        ("method.threshold=0.5", ["unknown key 'method.threshold'"]),
        ("data=mnist", ["data=mnist", "available: svhn, synthetic"]),
        ("data.verify=maybe", ["data.verify", "'maybe'", "bool"]),
        ("+extra_key=1", ["unknown key 'extra_key'"]),
        ("model.z_size=64,0", ["model.z_size=0", "sweep value"]),
        ("train.lr_decay_start_epoch=3", ["train.lr_decay_start_epoch=3", "linear_decay"]),
        ("train.adam_epsilon=0", ["train.adam_epsilon=0", "allowed > 0.0"]),
        ("train.init_batch_size=50000", ["train.init_batch_size=50000", "larger than the data"]),
        ("train.ema_bn_images=0", ["train.ema_bn_images=0", "allowed >= 1"]),
        ("model.dropout_mask=bits", ["model.dropout_mask=bits", "uniform, byte"]),
        ("tracking.run_name=a\nb", ["'tracking.run_name=a\\nb'", "control character"]),
        ("tracking.experiment=''", ["tracking.experiment is empty"]),
        ("data.render.clutter=1.5", ["data.render.clutter=1.5", "allowed >= 0.0 and <= 1.0"]),
        ("data.render.class_frequencies=zipf", ["class_frequencies=zipf", "svhn, uniform"]),
        ("data.render.jpeg_min_quality=95", ["jpeg_min_quality=95", "jpeg_max_quality=90"]),
        ("data.render.noise=nan", ["data.render.noise=nan", "not a number"]),
        ("train.lr=nan", ["train.lr=nan is not a number: allowed > 0.0 and <= 1.0"]),
        ("train.lr=10", ["train.lr=10.0 is out of range: allowed > 0.0 and <= 1.0"]),
        ("train.lr=inf", ["train.lr=inf is not a finite number: allowed > 0.0 and <= 1.0"]),
        ("data.val_size=0", ["data.val_size=0 is out of range: allowed >= 1"]),
        ("model.drop_rate=nan", ["model.drop_rate=nan is not a number: allowed >= 0.0 and"]),
        ("train.ema_decay=nan", ["train.ema_decay=nan is not a number: allowed >= 0.0 and <"]),
        ("train.ema_decay=1", ["train.ema_decay=1.0 is out of range: allowed >= 0.0 and < 1.0"]),
        ("train.beta1=1.0", ["train.beta1=1.0 is out of range: allowed >= 0.0 and < 1.0"]),
        ("method.unsupervised_weight=inf", ["unsupervised_weight=inf is not a finite number"]),
        ("train.worker_wait_s=inf", ["train.worker_wait_s=inf is not a finite number"]),
        ("tracking.retry_s=inf", ["tracking.retry_s=inf is not a finite number: allowed >= 0"]),
        ("model.image_size=32", ["model.image_size was removed", "32x32"]),
    ],
)
def test_bad_override_is_one_clear_line(override: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        check_overrides("config", [override], validate_train_config)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


@pytest.mark.unit
@pytest.mark.parametrize(
    ("config_name", "override", "line"),
    [
        ("config", "+model.new_key=1", "unknown key 'model.new_key': allowed keys of model are "
         "name, z_size, g_size_mult"),
        ("config", "+data.render.glare=0.5", "unknown key 'data.render.glare': allowed keys "
         "of data.render are class_frequencies,"),
        ("config", "+tracking.tag=x", "unknown key 'tracking.tag': allowed keys of tracking "
         "are uri, artifact_root, experiment"),
        ("data_stats", "+data.colour=red", "unknown key 'data.colour': allowed keys of data "
         "are name, root,"),
    ],
)  # fmt: skip
def test_an_added_key_a_section_does_not_have_is_refused_by_name(
    config_name: str, override: str, line: str
) -> None:
    """``+section.key=…`` is refused like a top-level key: it would be logged as a param and
    named in the run, and do nothing. ``ssgan.tune``'s training overrides are checked by
    the same call (ssgan/sweeps/plan.py)."""
    with pytest.raises(ConfigError) as caught:
        check_overrides(config_name, [override], VALIDATORS[config_name])
    assert str(caught.value).startswith(line)
    assert "\n" not in str(caught.value)


@pytest.mark.unit
def test_the_ends_the_maths_can_use_stay_allowed() -> None:
    """The tightened ranges keep their usable ends: Adam's rate up to 1 and beta1 from 0,
    an average as slow as the reference's, one validation image, no unlabelled loss."""
    check_overrides(
        "config",
        ["train.lr=1.0", "train.beta1=0.0", "train.ema_decay=0.9999", "data.val_size=1",
         "method.unsupervised_weight=0", "model.drop_rate=0.99", "tracking.retry_s=0"],
        validate_train_config,
    )  # fmt: skip


VALIDATORS: dict[str, Callable[[DictConfig], None]] = {
    "config": validate_train_config,
    "data_stats": validate_data_stats_config,
    "tune": check_tune_config,  # the search and the training config it holds
    "promote": validate_promote_config,  # its table checks come first
}


@pytest.mark.unit
@pytest.mark.parametrize("config_name", sorted(VALIDATORS))
def test_every_float_key_refuses_nan_and_infinity(config_name: str) -> None:
    """Every float a command's config holds (schema keys with or without a range, search
    space bounds): nan and +-inf are one line naming the key, the value and what is
    allowed, whatever check comes later."""
    cfg = compose_config(config_name, [])
    keys = [key for key, value in flatten(cfg).items() if isinstance(value, float)]
    assert len(keys) >= 2
    for key in keys:
        for bad in (math.nan, math.inf, -math.inf):
            changed = copy.deepcopy(cfg)
            OmegaConf.update(changed, key, bad, merge=False)
            with pytest.raises(ConfigError) as refused:
                VALIDATORS[config_name](changed)
            message = str(refused.value)
            assert message.startswith(f"{key}={bad} is not a "), message
            assert ": allowed " in message and "\n" not in message


@pytest.mark.unit
@pytest.mark.parametrize(
    ("config_name", "override", "line"),
    [
        ("tune", "search.pruner.lower=1.5",
         "search.pruner.lower=1.5 is out of range: allowed >= 0.0 and <= 1.0"),
        ("promote", "tracking.timeout_s=0",
         "tracking.timeout_s=0.0 is out of range: allowed > 0.0 and <= 3600.0"),
    ],
)  # fmt: skip
def test_search_and_promote_ranges_that_were_missing(
    config_name: str, override: str, line: str
) -> None:
    """The threshold pruner compares with a validation accuracy; promote opens the same
    MLflow store as training and checks its settings the same way."""
    with pytest.raises(ConfigError) as refused:
        VALIDATORS[config_name](compose_config(config_name, [override]))
    assert str(refused.value) == line


@pytest.mark.unit
def test_a_newline_in_an_mlflow_name_from_a_config_file_is_refused() -> None:
    """A run name or experiment with a newline (from an experiment file, where Hydra's
    parser lets it through) used to reach MLflow; ``a/b`` is a fine experiment name."""
    for key in ("tracking.run_name", "tracking.experiment"):
        cfg = compose_config("config", ["experiment=smoke"])
        OmegaConf.update(cfg, key, "line1\nline2")
        with pytest.raises(ConfigError, match=f"{key}='line1\\\\nline2' contains a control"):
            validate_train_config(cfg)
    validate_train_config(compose_config("config", ["tracking.experiment=a/b"]))


@pytest.mark.unit
def test_render_strengths_belong_to_synthetic_data_only() -> None:
    synthetic = compose_config("config", ["data.render.clutter=0.2"])
    validate_train_config(synthetic)
    assert synthetic.data.render.clutter == 0.2 and "data.render.low_res" in flatten(synthetic)
    svhn = compose_config("config", ["data=svhn"])
    validate_train_config(svhn)
    assert svhn.data.render is None


@pytest.mark.unit
def test_defaults_and_presets_compose_and_validate() -> None:
    for overrides in ([], ["experiment=smoke"], ["model=improved_gan", "data=svhn"]):
        check_overrides("config", overrides, validate_train_config)
    cfg = compose_config("config", ["model.z_size=64"])
    params = flatten(cfg)
    assert params["model.z_size"] == 64
    assert params["train.lr"] == pytest.approx(3e-4)
    assert params["train.beta1"] == pytest.approx(0.5)
    assert params["data.num_labeled"] == 1000


@pytest.mark.unit
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


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("model.z_size=0", "error: model.z_size=0 is out of range: allowed >= 1 and <= 4096"),
        ("train.lr=nan", "error: train.lr=nan is not a number: allowed > 0.0 and <= 1.0"),
    ],
)
def test_cli_bad_override_exits_2_without_traceback_or_files(
    tmp_path: Path, override: str, line: str
) -> None:
    result = run_cli("ssgan.train", override, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [line]
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # no mlruns/, no outputs/


@pytest.mark.e2e
def test_cli_help_and_cfg_show_groups_and_keys(tmp_path: Path) -> None:
    shown = run_cli("ssgan.train", "--help", cwd=tmp_path)
    assert shown.returncode == 0
    assert "experiment: improved_gan_svhn, label_budget, label_budget_small, methods, smoke" in (
        shown.stdout
    )
    assert "model: improved_gan, tutorial" in shown.stdout
    assert "search:" not in shown.stdout  # ssgan.tune's group, not a training one
    job = run_cli("ssgan.train", "--cfg", "job", "experiment=smoke", cwd=tmp_path)
    assert job.returncode == 0
    assert "z_size: 16" in job.stdout and "num_labeled: 100" in job.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_reference_preset_matches_the_reference_script() -> None:
    """experiment=improved_gan_svhn: 900 epochs of 732 steps, the rate constant to epoch
    600 then linearly to 0 -- lr * min(3 - epoch / 300, 1) every epoch -- Adam eps 1e-4,
    initialisation on 500 images."""
    cfg = compose_config("config", ["experiment=improved_gan_svhn"])
    validate_train_config(cfg)
    train = cfg.train
    assert (train.epochs, train.steps_per_epoch, train.lr_decay_start_epoch) == (900, 732, 600)
    assert (train.adam_epsilon, train.init_batch_size, cfg.data.batch_size) == (1e-4, 500, 100)
    options = _loop_options(cfg)
    for epoch in range(900):
        reference = 3e-4 * min(3.0 - epoch / 300.0, 1.0)
        assert options.learning_rate(epoch) == pytest.approx(reference, rel=1e-9, abs=1e-15)
    # Shortened as the preset's comment says: both numbers together.
    check_overrides(
        "config",
        ["experiment=improved_gan_svhn", "train.epochs=30", "train.lr_decay_start_epoch=20"],
        validate_train_config,
    )
    with pytest.raises(ConfigError, match="must start before training ends"):
        check_overrides(
            "config", ["experiment=improved_gan_svhn", "train.epochs=30"], validate_train_config
        )


@pytest.mark.unit
def test_linear_decay_without_a_start_keeps_the_last_third() -> None:
    options = _loop_options(
        compose_config("config", ["train.lr_schedule=linear_decay", "train.epochs=9"])
    )
    rates = [options.learning_rate(epoch) / 3e-4 for epoch in range(9)]
    assert rates == pytest.approx([1, 1, 1, 1, 1, 1, 1, 2 / 3, 1 / 3])


@pytest.mark.unit
@pytest.mark.parametrize(
    "option",
    sorted(
        str(p.relative_to(CONF)) for p in CONF.glob("*/*.yaml") if p.parent.name != "experiment"
    ),
)
def test_option_files_hold_only_what_differs_from_the_schema(option: str) -> None:
    """One declaration per knob: a group's option file sets only keys whose value differs
    from the schema's default (an equal value would be a second declaration to keep in
    step); an interpolation (an environment lookup) counts as a difference."""
    group = option.split("/")[0]
    schemas = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig,
               "tracking": TrackingConfig, "search": SearchConfig}  # fmt: skip
    from ssgan.config import GROUP_SCHEMAS

    if group in GROUP_SCHEMAS:  # method/, bench/: each option its own schema
        schemas[group] = GROUP_SCHEMAS[group][1][option.split("/")[1].removesuffix(".yaml")]
    if group not in schemas:
        pytest.skip(f"{group}/ has no schema section")
    values = OmegaConf.load(CONF / option)
    defaults = OmegaConf.structured(schemas[group])
    repeated = [
        key
        for key in flatten(values)
        if not OmegaConf.is_interpolation(
            OmegaConf.select(values, key.rpartition(".")[0]) if "." in key else values,
            key.rpartition(".")[2],
        )
        and OmegaConf.select(defaults, key, default=object()) == OmegaConf.select(values, key)
    ]
    assert not repeated, f"{option} repeats the schema's defaults for {repeated}"


@pytest.mark.unit
def test_a_run_stored_with_a_removed_key_keeps_its_job_key() -> None:
    """Configs stored by earlier runs hold model.image_size: its job key (the fingerprint
    resume=auto matches on) is the one today's composition gives, and loading the stored
    config drops the key."""
    from ssgan.config import upgrade_stored_config
    from ssgan.training.resume import config_fingerprint

    today = compose_config("config", [])
    stored = OmegaConf.create(OmegaConf.to_container(today))
    stored.model.image_size = 32
    assert config_fingerprint(stored) == config_fingerprint(today)
    assert "image_size" not in upgrade_stored_config(stored).model


@pytest.mark.unit
@pytest.mark.parametrize("method", ["ssgan", "supervised"])
def test_a_run_from_before_the_method_group_resumes_as_its_method(method: str) -> None:
    """A config stored before ``method=`` had ``train.mode`` (and the feature-matching
    keys under ``train``): it loads as that method, with its values, and keeps its job key."""
    from ssgan.config import TrainAppConfig, typed, upgrade_stored_config
    from ssgan.training.resume import config_fingerprint

    today = compose_config("config", [f"method={method}", "method.unsupervised_weight=0.5"]
                           if method == "ssgan" else [f"method={method}"])  # fmt: skip
    stored = OmegaConf.create(OmegaConf.to_container(today))
    stored.pop("method")
    stored.train.mode = method
    stored.train.feature_matching = "squared_l2"
    stored.train.unsupervised_weight = 0.5 if method == "ssgan" else 1.0
    assert config_fingerprint(stored) == config_fingerprint(today)
    upgraded = typed(upgrade_stored_config(stored), TrainAppConfig)
    assert upgraded.method == typed(today, TrainAppConfig).method
    assert not hasattr(upgraded.train, "mode")


@pytest.mark.unit
def test_default_tracking_is_the_training_configs_tracking_section(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    whole = compose_config("config", []).tracking
    alone = default_tracking()
    assert dataclasses.asdict(alone) == OmegaConf.to_container(whole, resolve=True)
    assert isinstance(alone, TrackingConfig) and isinstance(alone.timeout_s, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        alone.uri = "sqlite:///changed.db"  # type: ignore[misc]
    given = default_tracking("sqlite:///elsewhere.db")
    assert given.uri == "sqlite:///elsewhere.db" and given.experiment == whole.experiment


def _loop_options(cfg: DictConfig) -> LoopOptions:
    settings = typed(cfg, TrainAppConfig)
    return LoopOptions.from_config(settings.train, settings.data, settings.method)


@pytest.mark.unit
def test_a_composed_config_becomes_frozen_typed_values() -> None:
    """What commands pass below them: the schema's dataclasses, with the overrides'
    values and types, that no code can change under a run."""
    cfg = compose_config("config", ["model.z_size=16", "train.lr=0.001", "data=synthetic"])
    settings = typed(cfg, TrainAppConfig)
    assert isinstance(settings.model, ModelConfig) and settings.model.z_size == 16
    assert settings.train.lr == 0.001 and isinstance(settings.train.lr, float)
    assert isinstance(settings.data.render, RenderConfig)  # the synthetic renderer's section
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.train.lr = 1.0  # type: ignore[misc]
    cfg.train.lr = 0.5  # the composed config stays what is written out; the value is a copy
    assert settings.train.lr == 0.001


@pytest.mark.unit
def test_a_stored_config_without_a_newer_key_gets_the_schemas_default() -> None:
    """A run stored before a key existed resumes and exports with the key's default."""
    stored = OmegaConf.to_container(compose_config("config", []), resolve=True)
    assert isinstance(stored, dict)
    del stored["train"]["steps_per_loop"], stored["model"]["dropout_mask"]
    settings = typed(OmegaConf.create(stored), TrainAppConfig)
    assert settings.train.steps_per_loop == TrainConfig().steps_per_loop
    assert settings.model.dropout_mask == "uniform"
