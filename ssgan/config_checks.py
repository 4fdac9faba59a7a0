"""The checks a composed config passes before any heavy work starts.

Types are Hydra's to check (the schemas in :mod:`ssgan.config`); these check what types
cannot express — choices, ranges, label budgets against data sizes, names MLflow can
store — and raise :class:`ConfigError`, which the entry points print as one line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import typing
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from omegaconf import DictConfig, ListConfig, OmegaConf

from ssgan.config import (
    DATA_STATS_SPLITS,
    GROUP_SCHEMAS,
    DataStatsAppConfig,
    TrainAppConfig,
)
from ssgan.errors import ConfigError

CHOICES = {
    "model.name": ("tutorial", "improved_gan"),
    "model.dropout_mask": ("uniform", "byte"),
    "data.name": ("svhn", "synthetic"),
    "data.render.class_frequencies": ("svhn", "uniform"),
    "train.lr_schedule": ("constant", "linear_decay"),
    "method.feature_matching": ("squared_l2", "l1"),
    "train.strategy": ("default", "mirrored", "multi_worker"),
    "train.precision": ("fp32", "bf16", "fp16"),
}

# Render strengths that are shares of the images (probabilities) or kept fractions.
RENDER_SHARES = (
    "overlap", "clutter", "border", "shadow", "low_contrast", "light_on_dark",
    "motion_blur", "low_res", "saturation",
)  # fmt: skip


class Range(NamedTuple):
    """The numbers a key allows: from ``low`` to ``high`` (None: no upper end), each end
    itself allowed or not. Every allowed number is finite: nan and ±inf never are."""

    low: float
    high: float | None = None
    low_ok: bool = True
    high_ok: bool = True

    def allows(self, value: float) -> bool:
        """Whether ``value`` is a finite number between the ends."""
        above = value >= self.low if self.low_ok else value > self.low
        below = self.high is None or (value <= self.high if self.high_ok else value < self.high)
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        """What an error line says is allowed: ``>= 0.0 and < 1.0``."""
        lower = f">= {self.low}" if self.low_ok else f"> {self.low}"
        if self.high is None:
            return lower
        return f"{lower} and {'<=' if self.high_ok else '<'} {self.high}"


# The MLflow store's settings, in every command that opens one.
TRACKING_RANGES: dict[str, Range] = {
    "tracking.timeout_s": Range(0.0, 3600.0, low_ok=False),
    "tracking.retry_s": Range(0.0),
    "tracking.lease_s": Range(1.0),
}

RANGES: dict[str, Range] = {
    "model.z_size": Range(1, 4096),
    "model.g_size_mult": Range(1, 1024),
    "model.d_size_mult": Range(1, 1024),
    "model.drop_rate": Range(0.0, 0.99),  # Keras' Dropout needs a rate below 1
    "model.leaky_alpha": Range(0.0, 1.0),
    "model.num_classes": Range(2, 1000),
    "data.num_labeled": Range(1),
    # Model selection reads validation accuracy: with no images it is 0 every epoch.
    "data.val_size": Range(1),
    "data.batch_size": Range(1, 65_536),
    "data.train_size": Range(1),
    "data.test_size": Range(1),
    "data.num_workers": Range(0, 256),
    **{f"data.render.{key}": Range(0.0, 1.0) for key in RENDER_SHARES},
    "data.render.defocus": Range(0.0, 4.0),
    "data.render.noise": Range(0.0, 64.0),
    "data.render.jpeg_min_quality": Range(1, 100),
    "data.render.jpeg_max_quality": Range(1, 100),
    "train.epochs": Range(1),
    "train.steps_per_epoch": Range(0),
    # Adam moves each weight by about lr a step: beyond 1 that dwarfs the weights (lr=10
    # ended with losses near 1e4).
    "train.lr": Range(0.0, 1.0, low_ok=False),
    # Adam divides by 1 - beta1**t: at 1 that is 0 and the first step is nan.
    "train.beta1": Range(0.0, 1.0, high_ok=False),
    "train.adam_epsilon": Range(0.0, 1.0, low_ok=False),  # Adam divides by sqrt(v) + eps
    "train.init_batch_size": Range(0),
    "train.lr_decay": Range(0.0, 1.0, low_ok=False),  # 0 would stop learning after epoch 1
    "method.unsupervised_weight": Range(0.0),  # a negative weight would reward a worse D
    "method.entropy_weight": Range(0.0),
    "method.pull_away_weight": Range(0.0),
    "method.consistency_weight": Range(0.0),
    "method.rampup": Range(0.0, 1.0),
    # A teacher decay of 1 never takes in the student's weights.
    "method.teacher_decay": Range(0.0, 1.0, high_ok=False),
    "method.teacher_decay_after": Range(0.0, 1.0, high_ok=False),
    "method.translate": Range(0, 16),  # pixels of a 32-pixel image
    "method.input_noise": Range(0.0),
    "method.threshold": Range(0.0, 1.0),  # a confidence
    "method.unlabelled_ratio": Range(1, 64),
    "method.unlabelled_weight": Range(0.0),
    "method.strong_ops": Range(0, 8),
    "method.cutout": Range(0.0, 1.0),
    # At 1 an EMA keeps its old value and never takes in the weights; the warm-up would
    # silently make it another kind of average.
    "train.ema_decay": Range(0.0, 1.0, high_ok=False),
    "train.ema_bn_images": Range(1),
    "train.log_every": Range(1),
    "train.checkpoint_every": Range(1),
    "train.checkpoint_every_s": Range(0.0),  # 0 = by steps and epochs only
    "train.steps_per_loop": Range(1),
    "train.cpu_replicas": Range(0, 64),
    "train.worker_wait_s": Range(0.0, low_ok=False),
    "train.eval_batch_size": Range(1),
    **TRACKING_RANGES,
}


# The search command's settings (``search.*``, SearchConfig) and the promote command's
# (PromoteAppConfig): checked by the same table-driven code as training's.
SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "nsga2")
PRUNERS = ("none", "median", "percentile", "threshold", "successive_halving", "hyperband")
SEARCH_CHOICES = {"search.sampler": SAMPLERS, "search.pruner.name": PRUNERS}
SEARCH_RANGES: dict[str, Range] = {
    "search.n_trials": Range(1),
    "search.n_random_trials": Range(0),
    "search.workers": Range(1),
    "search.threads_per_worker": Range(0),
    "search.pruner.n_startup_trials": Range(0),
    "search.pruner.n_warmup_steps": Range(0),
    "search.pruner.percentile": Range(0.0, 100.0),
    "search.pruner.lower": Range(0.0, 1.0),  # compared with a validation accuracy
    "search.pruner.min_resource": Range(1),
    "search.pruner.reduction_factor": Range(2),
}
VERSION_LABELS = ("stable", "canary")  # a served version's labels (TF Serving's models.config)
PROMOTE_CHOICES = {"label": VERSION_LABELS}
PROMOTE_RANGES: dict[str, Range] = {
    "version": Range(0),
    "min_accuracy": Range(0.0, 1.0),
    "accuracy_tolerance": Range(0.0, 1.0),
    "score_tolerance": Range(0.0, 1.0),
    **TRACKING_RANGES,
}


# The MLflow stores ``tracking.uri`` may name. A PostgreSQL store needs its driver, an
# optional extra; the store itself is checked when a command opens it
# (ssgan/tracking/store.py), these only by their URI, before Hydra writes anything.
ALLOWED_URIS = (
    "sqlite:///PATH (a local SQLite file), http(s)://HOST:PORT (an MLflow server) or "
    "postgresql://USER@HOST/DB (with pip install 'ssgan[postgres]')"
)
POSTGRES_DRIVERS = {  # SQLAlchemy's name for each driver -> the module it imports
    "postgresql": "psycopg2",
    "postgresql+psycopg2": "psycopg2",
    "postgresql+psycopg": "psycopg",
    "postgresql+pg8000": "pg8000",
}


def check_tracking_uri(uri: str) -> None:
    """One line for a ``tracking.uri`` no command could open: an unknown scheme, a plain-file
    store (which MLflow 3 deprecates), a PostgreSQL store without its driver."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    shown = re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", uri)  # never echo a password
    if scheme in ("sqlite", "http", "https"):
        return
    if scheme in POSTGRES_DRIVERS:
        driver = POSTGRES_DRIVERS[scheme]
        if importlib.util.find_spec(driver) is None:
            raise ConfigError(
                f"tracking.uri={shown}: a PostgreSQL store needs the {driver} driver, which is "
                "not installed: pip install 'ssgan[postgres]' (the project's postgres extra)"
            )
        return
    if uri.lower().startswith("file:"):
        raise ConfigError(
            f"tracking.uri={shown} is a plain-file store, which MLflow 3 deprecates (it has no "
            "Model Registry, which promote uses): use sqlite:///mlflow.db, or move its runs "
            "there with mlflow migrate-filestore --source FOLDER --target sqlite:///mlflow.db"
        )
    raise ConfigError(f"tracking.uri={shown} is not a tracking store: allowed {ALLOWED_URIS}")


def _get(cfg: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(cfg, dotted, throw_on_missing=False)


def _absent_section(cfg: DictConfig, key: str) -> bool:
    """True for a key of an optional section the config leaves out (``data.render`` of
    ``data=svhn``) or of another method than the one chosen (``method.threshold`` of
    ``method=ssgan``: each method's schema has its own keys)."""
    if key.startswith("method."):
        method = _get(cfg, "method")
        return not isinstance(method, DictConfig) or key.split(".", 1)[1] not in method
    return key.startswith("data.render.") and _get(cfg, "data.render") is None


def check_table(
    cfg: DictConfig,
    choices: Mapping[str, tuple[str, ...]],
    ranges: Mapping[str, Range],
    prefix: str = "",
) -> None:
    """The table-driven checks of every key under ``prefix`` ("" = all): a choice from its
    list, a number in its range, and every other number finite; one ConfigError line
    naming key, value and what is allowed."""
    for key, allowed in choices.items():
        value = _get(cfg, key)
        if key.startswith(prefix) and value not in allowed and not _absent_section(cfg, key):
            raise ConfigError(f"{key}={value} is not a valid choice: allowed {', '.join(allowed)}")
    for key, limits in ranges.items():
        if key.startswith(prefix) and not _absent_section(cfg, key):
            _check_range(key, _get(cfg, key), limits)
    # Keys without a range (and numbers in search.space, search.enqueue): nan compares False
    # with everything, so it would pass any later check and fail deep in the maths.
    for key, value in _numbers(cfg, ""):
        if key.startswith(prefix) and key not in ranges and not math.isfinite(value):
            raise ConfigError(f"{key}={value} is {_not_finite(value)}: allowed finite numbers")


def _check_range(key: str, value: Any, limits: Range) -> None:
    """One line naming the key, the value and the range when the range refuses it."""
    if not math.isfinite(value):
        raise ConfigError(f"{key}={value} is {_not_finite(value)}: allowed {limits}")
    if not limits.allows(value):
        raise ConfigError(f"{key}={value} is out of range: allowed {limits}")


def _not_finite(value: float) -> str:
    """How an error line names nan and ±inf."""
    return "not a number" if math.isnan(value) else "not a finite number"


def _numbers(node: Any, path: str) -> Iterator[tuple[str, float]]:
    """Every float written in the config, by dotted key (``search.enqueue[0].train.lr``);
    interpolations are left to the keys they point at."""
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _numbers(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _numbers(child, f"{path}[{i}]")
    elif isinstance(node, float):
        yield path, node


def labelled_pool_size(data: DictConfig) -> int:
    """Training images labels can be drawn from once validation is held out (SVHN's
    extra images only ever join the unlabelled pool)."""
    return int(data.train_size) - int(data.val_size)


def validate_train_config(cfg: DictConfig) -> None:
    """Raise ConfigError with one line naming the key, the value and what is allowed."""
    check_unknown_keys(cfg, TrainAppConfig)
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
    if cfg.method.name == "mean_teacher" and cfg.train.ema_decay > 0:
        raise ConfigError(
            f"train.ema_decay={cfg.train.ema_decay} does not apply to method=mean_teacher: "
            "its teacher is the average it evaluates (method.teacher_decay); set "
            "train.ema_decay=0"
        )
    _check_render(data.render)
    _check_init_batch(cfg.train, data)
    _check_names(cfg.tracking)
    if data.num_labeled > pool:
        raise ConfigError(
            f"data.num_labeled={data.num_labeled} is larger than the data: the {data.name} "
            f"training pool holds {pool} images after data.val_size={data.val_size}"
        )


def check_unknown_keys(cfg: DictConfig, schema: type, prefix: str = "") -> None:
    """``+key=value`` adds keys even to a structured config, at any depth: refuse one the
    schema does not have, in one line naming it and the keys its section allows."""
    hints = typing.get_type_hints(schema)
    allowed = [f.name for f in dataclasses.fields(schema)]
    unknown = sorted({str(key) for key in cfg} - set(allowed))
    if unknown:
        where = f"keys of {prefix.rstrip('.')} are" if prefix else "top-level keys are"
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}': allowed {where} {', '.join(allowed)}"
        )
    for name in allowed:
        section = _dataclass_in(hints[name])
        node = _get(cfg, name)
        if section is not None and isinstance(node, DictConfig):
            check_unknown_keys(node, _section_schema(node, section), f"{prefix}{name}.")


def _section_schema(node: DictConfig, declared: type) -> type:
    """The schema a section really has: its group option's own (``method=fixmatch``: its
    FixMatchMethod keys, not only MethodConfig's), else the one the field declares."""
    for base, options in GROUP_SCHEMAS.values():
        if issubclass(declared, base):
            return options.get(str(node.get("name")), declared)
    return declared


def _dataclass_in(hint: Any) -> type | None:
    """The schema a field holds: ``RenderConfig`` for ``RenderConfig | None``."""
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
            return candidate
    return None


def validate_data_stats_config(cfg: DictConfig) -> None:
    """The data statistics command's checks: its split, and the data keys as training
    checks them (what a data set is made of, not the label budget it is not split into)."""
    check_unknown_keys(cfg, DataStatsAppConfig)
    if cfg.split not in DATA_STATS_SPLITS:
        raise ConfigError(
            f"split={cfg.split} is not a valid choice: allowed {', '.join(DATA_STATS_SPLITS)}"
        )
    check_table(cfg, CHOICES, RANGES, prefix="data.")
    _check_render(cfg.data.render)


def _check_names(tracking: DictConfig) -> None:
    """A store some command could open (:func:`check_tracking_uri`), and MLflow names on
    one line: a newline or other control character breaks every listing and log line
    that shows them."""
    check_tracking_uri(str(tracking.uri))
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
