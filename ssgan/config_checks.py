"""The checks a composed config passes before any heavy work starts.

Types are Hydra's to check (the schemas in :mod:`ssgan.config`); these check what types
cannot express — choices, ranges, label budgets against data sizes, names MLflow can
store — and raise :class:`ConfigError`, which the entry points print as one line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ssgan.config import (
    DATA_STATS_SPLITS,
    DataStatsAppConfig,
    TrainAppConfig,
)
from ssgan.errors import ConfigError

CHOICES = {
    "model.name": ("tutorial", "improved_gan"),
    "model.dropout_mask": ("uniform", "byte"),
    "data.name": ("svhn", "synthetic"),
    "data.render.class_frequencies": ("svhn", "uniform"),
    "train.mode": ("ssgan", "supervised"),
    "train.lr_schedule": ("constant", "linear_decay"),
    "train.feature_matching": ("squared_l2", "l1"),
    "train.strategy": ("default", "mirrored", "multi_worker"),
    "train.precision": ("fp32", "bf16", "fp16"),
}

# Render strengths that are shares of the images (probabilities) or kept fractions.
RENDER_SHARES = (
    "overlap", "clutter", "border", "shadow", "low_contrast", "light_on_dark",
    "motion_blur", "low_res", "saturation",
)  # fmt: skip

# key -> (lowest allowed, highest allowed, whether the lowest itself is allowed)
Range = tuple[float, float | None, bool]
RANGES: dict[str, Range] = {
    "model.z_size": (1, 4096, True),
    "model.g_size_mult": (1, 1024, True),
    "model.d_size_mult": (1, 1024, True),
    "model.drop_rate": (0.0, 0.99, True),
    "model.leaky_alpha": (0.0, 1.0, True),
    "model.num_classes": (2, 1000, True),
    "data.num_labeled": (1, None, True),
    "data.val_size": (0, None, True),
    "data.batch_size": (1, 65_536, True),
    "data.train_size": (1, None, True),
    "data.test_size": (1, None, True),
    "data.num_workers": (0, 256, True),
    **{f"data.render.{key}": (0.0, 1.0, True) for key in RENDER_SHARES},
    "data.render.defocus": (0.0, 4.0, True),
    "data.render.noise": (0.0, 64.0, True),
    "data.render.jpeg_min_quality": (1, 100, True),
    "data.render.jpeg_max_quality": (1, 100, True),
    "train.epochs": (1, None, True),
    "train.steps_per_epoch": (0, None, True),
    "train.lr": (0.0, 10.0, False),
    "train.beta1": (0.0, 1.0, True),
    "train.adam_epsilon": (0.0, 1.0, False),
    "train.init_batch_size": (0, None, True),
    "train.lr_decay": (0.0, 1.0, False),
    "train.unsupervised_weight": (0.0, None, True),
    "train.ema_decay": (0.0, 1.0, True),
    "train.ema_bn_images": (1, None, True),
    "train.log_every": (1, None, True),
    "train.checkpoint_every": (1, None, True),
    "train.checkpoint_every_s": (0.0, None, True),
    "train.steps_per_loop": (1, None, True),
    "train.cpu_replicas": (0, 64, True),
    "train.worker_wait_s": (0.0, None, False),
    "train.eval_batch_size": (1, None, True),
    "tracking.timeout_s": (0.0, 3600.0, False),
    "tracking.retry_s": (0.0, None, True),
    "tracking.lease_s": (1.0, None, True),
}


# The search command's settings (``search.*``, SearchConfig) and the promote command's
# (PromoteAppConfig): checked by the same table-driven code as training's.
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median", "percentile", "threshold", "successive_halving", "hyperband")
SEARCH_CHOICES = {"search.sampler": SAMPLERS, "search.pruner.name": PRUNERS}
SEARCH_RANGES: dict[str, Range] = {
    "search.n_trials": (1, None, True),
    "search.n_random_trials": (0, None, True),
    "search.workers": (1, None, True),
    "search.threads_per_worker": (0, None, True),
    "search.pruner.n_startup_trials": (0, None, True),
    "search.pruner.n_warmup_steps": (0, None, True),
    "search.pruner.percentile": (0.0, 100.0, True),
    "search.pruner.min_resource": (1, None, True),
    "search.pruner.reduction_factor": (2, None, True),
}
VERSION_LABELS = ("stable", "canary")  # a served version's labels (TF Serving's models.config)
PROMOTE_CHOICES = {"label": VERSION_LABELS}
PROMOTE_RANGES: dict[str, Range] = {
    "version": (0, None, True),
    "min_accuracy": (0.0, 1.0, True),
    "accuracy_tolerance": (0.0, 1.0, True),
    "score_tolerance": (0.0, 1.0, True),
}


def _get(cfg: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(cfg, dotted, throw_on_missing=False)


def _absent_section(cfg: DictConfig, key: str) -> bool:
    """True for a key of an optional section the config leaves out (``data.render`` of
    ``data=svhn``)."""
    return key.startswith("data.render.") and _get(cfg, "data.render") is None


def check_table(
    cfg: DictConfig,
    choices: Mapping[str, tuple[str, ...]],
    ranges: Mapping[str, Range],
    prefix: str = "",
) -> None:
    """The table-driven checks of every key under ``prefix`` ("" = all): a choice from its
    list, a number in its range; one ConfigError line naming key, value and what is allowed."""
    for key, allowed in choices.items():
        value = _get(cfg, key)
        if key.startswith(prefix) and value not in allowed and not _absent_section(cfg, key):
            raise ConfigError(f"{key}={value} is not a valid choice: allowed {', '.join(allowed)}")
    for key, limits in ranges.items():
        if key.startswith(prefix) and not _absent_section(cfg, key):
            _check_range(key, _get(cfg, key), limits)


def _check_range(key: str, value: Any, limits: Range) -> None:
    low, high, low_ok = limits
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{key}=nan is not a number: allowed values are finite numbers")
    too_low = value < low if low_ok else value <= low
    too_high = high is not None and value > high
    if too_low or too_high:
        lower = f">= {low}" if low_ok else f"> {low}"
        allowed = lower if high is None else f"{lower} and <= {high}"
        raise ConfigError(f"{key}={value} is out of range: allowed {allowed}")


def labelled_pool_size(data: DictConfig) -> int:
    """Training images labels can be drawn from once validation is held out (SVHN's
    extra images only ever join the unlabelled pool)."""
    return int(data.train_size) - int(data.val_size)


def validate_train_config(cfg: DictConfig) -> None:
    """Raise ConfigError with one line naming the key, the value and what is allowed."""
    _check_top_level_keys(cfg, TrainAppConfig)
    check_table(cfg, CHOICES, RANGES)
    data, model = cfg.data, cfg.model
    pool = labelled_pool_size(data)
    if pool < 1:
        raise ConfigError(
            f"data.val_size={data.val_size} leaves no training images: it must be smaller "
            f"than the training set ({pool + data.val_size} images)"
        )
    if data.num_labeled < model.num_classes:
        raise ConfigError(
            f"data.num_labeled={data.num_labeled} is too small: a class-balanced budget needs "
            f"at least one image per class (>= {model.num_classes})"
        )
    _check_schedule(cfg.train)
    _check_render(data.render)
    _check_init_batch(cfg.train, data)
    _check_names(cfg.tracking)
    if data.num_labeled > pool:
        raise ConfigError(
            f"data.num_labeled={data.num_labeled} is larger than the data: the {data.name} "
            f"training pool holds {pool} images after data.val_size={data.val_size}"
        )


def _check_top_level_keys(cfg: DictConfig, schema: type) -> None:
    """``+key=value`` adds keys even to a structured config: refuse those not in ``schema``."""
    allowed = [f.name for f in dataclasses.fields(schema)]
    unknown = sorted({str(key) for key in cfg} - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key '{unknown[0]}': allowed top-level keys are {', '.join(allowed)}"
        )


def validate_data_stats_config(cfg: DictConfig) -> None:
    """The data statistics command's checks: its split, and the data keys as training
    checks them (what a data set is made of, not the label budget it is not split into)."""
    _check_top_level_keys(cfg, DataStatsAppConfig)
    if cfg.split not in DATA_STATS_SPLITS:
        raise ConfigError(
            f"split={cfg.split} is not a valid choice: allowed {', '.join(DATA_STATS_SPLITS)}"
        )
    check_table(cfg, CHOICES, RANGES, prefix="data.")
    _check_render(cfg.data.render)


def _check_names(tracking: DictConfig) -> None:
    """MLflow names are one line: a newline or other control character breaks every
    listing and log line that shows them."""
    for key in ("experiment", "run_name"):
        value = str(tracking[key])
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ConfigError(
                f"tracking.{key}={value!r} contains a control character (a newline?): "
                "MLflow names must be one line of printable characters"
            )
    if not str(tracking.experiment).strip():
        raise ConfigError("tracking.experiment is empty: name the MLflow experiment, e.g. ssgan")


def _check_schedule(train: DictConfig) -> None:
    start = train.lr_decay_start_epoch
    if start is None:
        return
    if train.lr_schedule != "linear_decay":
        raise ConfigError(
            f"train.lr_decay_start_epoch={start} needs train.lr_schedule=linear_decay "
            f"(it is {train.lr_schedule}); set it or drop the start epoch"
        )
    if not 0 <= start < train.epochs:
        raise ConfigError(
            f"train.lr_decay_start_epoch={start} is out of range: allowed >= 0 and < "
            f"train.epochs={train.epochs} (decay must start before training ends)"
        )


def _check_render(render: DictConfig | None) -> None:
    if render is not None and render.jpeg_min_quality > render.jpeg_max_quality:
        raise ConfigError(
            f"data.render.jpeg_min_quality={render.jpeg_min_quality} is above "
            f"data.render.jpeg_max_quality={render.jpeg_max_quality}: the range is empty"
        )


def _check_init_batch(train: DictConfig, data: DictConfig) -> None:
    images = labelled_pool_size(data)  # at least this many unlabelled images
    if train.init_batch_size > images:
        raise ConfigError(
            f"train.init_batch_size={train.init_batch_size} is larger than the data: the "
            f"{data.name} unlabelled pool holds {images} images"
        )
