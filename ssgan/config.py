"""Structured config schemas and the checks that run before any heavy work.

The YAML tree in ``conf/`` holds the values; the dataclasses here hold the types, so
Hydra rejects a misspelt key or a wrong type while composing. ``validate_train_config``
then checks what types cannot express (ranges, choices, label budgets against data
sizes) and raises :class:`ConfigError`, which the entry points print as one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ssgan.errors import ConfigError

# Sizes of the official SVHN cropped-digit files (train, test, extra).
SVHN_SIZES = {"train": 73_257, "test": 26_032, "extra": 531_131}


@dataclass
class ModelConfig:
    name: str = "tutorial"  # tutorial | improved_gan
    z_size: int = 100
    g_size_mult: int = 32
    d_size_mult: int = 64
    drop_rate: float = 0.5
    dropout_mask: str = "uniform"  # uniform (Keras: a float per element) | byte (faster)
    leaky_alpha: float = 0.2
    num_classes: int = 10
    image_size: int = 32


@dataclass
class DataConfig:
    name: str = "synthetic"  # svhn | synthetic
    root: str = "data"
    verify: bool = True
    download: bool = True
    use_extra: bool = False
    num_labeled: int = 1000
    val_size: int = 5000
    batch_size: int = 128
    seed: int = 0
    # synthetic only: how many images to generate and how
    synthetic_seed: int = 0
    train_size: int = 50_000
    test_size: int = 10_000
    num_workers: int = 0  # 0 = one per CPU core


@dataclass
class TrainConfig:
    mode: str = "ssgan"  # ssgan | supervised
    epochs: int = 10
    steps_per_epoch: int = 0  # 0 = one pass over the unlabelled pool
    lr: float = 3e-4
    beta1: float = 0.5
    lr_decay: float = 1.0  # multiplied into the learning rate after every epoch
    lr_schedule: str = "constant"  # constant | linear_decay (improved-gan's schedule)
    lr_decay_start_epoch: int | None = None  # linear_decay: None = 2/3 of the epochs
    adam_epsilon: float = 1e-7  # Keras' default; 1e-4 approximates the reference code's
    init_batch_size: int = 0  # images for data-dependent init; 0 = data.batch_size
    feature_matching: str = "squared_l2"  # squared_l2 (paper) | l1 (reference code)
    unsupervised_weight: float = 1.0
    ema_decay: float = 0.0  # 0 = off; e.g. 0.999 to evaluate/export averaged D weights
    ema_bn_images: int = 2048  # real images the average's batch-norm statistics come from
    seed: int = 0
    deterministic: bool = False
    log_every: int = 50
    checkpoint_every: int = 500
    steps_per_loop: int = 10  # steps per compiled call (1 = one call per step)
    eval_batch_size: int = 500
    sample_grid: bool = True
    strategy: str = "default"  # default | mirrored | multi_worker
    cpu_replicas: int = 0  # mirrored without GPUs: split the CPU into N logical devices
    worker_wait_s: float = 300.0  # multi_worker: how long to wait for the other workers
    precision: str = "fp32"  # fp32 | bf16 | fp16
    jit_compile: bool = False


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_root: str = "mlruns/artifacts"
    experiment: str = "ssgan"
    run_name: str = ""  # empty = built from the overrides
    timeout_s: float = 10.0  # one request to the store (HTTP, or a locked SQLite file)
    retry_s: float = 120.0  # how long failed writes are retried before the run fails
    lease_s: float = 60.0  # a job owns its run while it renews this lease (see job.py)
    system_metrics: bool = False  # MLflow's system/* metrics, sampled with psutil


@dataclass
class TrainAppConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    resume: str | None = None


@dataclass
class PrunerConfig:
    name: str = "median"  # none | median | percentile | threshold | successive_halving | hyperband
    n_startup_trials: int = 3  # median, percentile: trials that always run to the end first
    n_warmup_steps: int = 1  # median, percentile, threshold: first epoch a trial may be pruned
    percentile: float = 25.0  # percentile: prune below this percentile of the other trials
    lower: float = 0.0  # threshold: prune when validation accuracy is below this
    min_resource: int = 1  # successive_halving, hyperband: epochs every trial gets
    reduction_factor: int = 3  # successive_halving, hyperband


@dataclass
class SearchConfig:
    name: str = ""
    n_trials: int = 20
    sampler: str = "tpe"  # tpe | random
    n_random_trials: int = 5  # tpe: trials drawn at random before TPE models the results
    seed: int = 0
    baseline: bool = True  # first trial: the base config's own values (the defaults)
    storage: str = ""  # journal file path or RDB URL; empty = optuna.journal beside mlruns
    workers: int = 1  # worker processes this command starts (each takes the next trial)
    threads_per_worker: int = 0  # TensorFlow threads of each worker; 0 = TF's own choice
    enqueue: list[Any] = field(default_factory=list)  # trials to evaluate first
    space: dict[str, Any] = field(default_factory=dict)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)


@dataclass
class TuneAppConfig:
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass
class PromoteAppConfig:
    run_id: str = ""
    model_name: str = "ssgan"
    serving_dir: str = "serving"
    min_accuracy: float = 0.0
    must_beat_live: bool = False
    force: bool = False
    list: bool = False
    accuracy_tolerance: float = 0.01
    score_tolerance: float = 0.001
    alias: str = "production"
    canary_alias: str = "canary"
    label: str = "stable"
    version: int = 0
    server_model_dir: str = "/models"
    bundle: str = ""
    image: str = "ssgan-serving"
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def register_schemas() -> None:
    """Make the schemas available to the defaults lists in ``conf/``."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainAppConfig)
    store.store(name="promote_schema", node=PromoteAppConfig)
    store.store(name="tune_schema", node=TuneAppConfig)


CHOICES = {
    "model.name": ("tutorial", "improved_gan"),
    "model.dropout_mask": ("uniform", "byte"),
    "data.name": ("svhn", "synthetic"),
    "train.mode": ("ssgan", "supervised"),
    "train.lr_schedule": ("constant", "linear_decay"),
    "train.feature_matching": ("squared_l2", "l1"),
    "train.strategy": ("default", "mirrored", "multi_worker"),
    "train.precision": ("fp32", "bf16", "fp16"),
}

# key -> (lowest allowed, highest allowed, whether the lowest itself is allowed)
RANGES = {
    "model.z_size": (1, 4096, True),
    "model.g_size_mult": (1, 1024, True),
    "model.d_size_mult": (1, 1024, True),
    "model.drop_rate": (0.0, 0.99, True),
    "model.leaky_alpha": (0.0, 1.0, True),
    "model.num_classes": (2, 1000, True),
    "model.image_size": (32, 32, True),
    "data.num_labeled": (1, None, True),
    "data.val_size": (0, None, True),
    "data.batch_size": (1, 65_536, True),
    "data.train_size": (1, None, True),
    "data.test_size": (1, None, True),
    "data.num_workers": (0, 256, True),
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
    "train.steps_per_loop": (1, None, True),
    "train.cpu_replicas": (0, 64, True),
    "train.worker_wait_s": (0.0, None, False),
    "train.eval_batch_size": (1, None, True),
    "tracking.timeout_s": (0.0, 3600.0, False),
    "tracking.retry_s": (0.0, None, True),
    "tracking.lease_s": (1.0, None, True),
}


def _get(cfg: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(cfg, dotted, throw_on_missing=False)


def _check_range(key: str, value: Any) -> None:
    low, high, low_ok = RANGES[key]
    too_low = value < low if low_ok else value <= low
    too_high = high is not None and value > high
    if too_low or too_high:
        lower = f">= {low}" if low_ok else f"> {low}"
        allowed = lower if high is None else f"{lower} and <= {high}"
        raise ConfigError(f"{key}={value} is out of range: allowed {allowed}")


def labelled_pool_size(data: DictConfig) -> int:
    """Training images labels can be drawn from once validation is held out (SVHN's
    extra images only ever join the unlabelled pool)."""
    total = SVHN_SIZES["train"] if data.name == "svhn" else data.train_size
    return total - data.val_size


def validate_train_config(cfg: DictConfig) -> None:
    """Raise ConfigError with one line naming the key, the value and what is allowed."""
    unknown = sorted({str(key) for key in cfg} - set(TrainAppConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(
            f"unknown key '{unknown[0]}': allowed top-level keys are "
            f"{', '.join(TrainAppConfig.__dataclass_fields__)}"
        )
    for key, allowed in CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value} is not a valid choice: allowed {', '.join(allowed)}")
    for key in RANGES:
        _check_range(key, _get(cfg, key))
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
    _check_init_batch(cfg.train, data)
    _check_names(cfg.tracking)
    if data.num_labeled > pool:
        raise ConfigError(
            f"data.num_labeled={data.num_labeled} is larger than the data: the {data.name} "
            f"training pool holds {pool} images after data.val_size={data.val_size}"
        )


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


def _check_init_batch(train: DictConfig, data: DictConfig) -> None:
    images = labelled_pool_size(data)  # at least this many unlabelled images
    if train.init_batch_size > images:
        raise ConfigError(
            f"train.init_batch_size={train.init_batch_size} is larger than the data: the "
            f"{data.name} unlabelled pool holds {images} images"
        )


def flatten(cfg: DictConfig, prefix: str = "") -> dict[str, Any]:
    """The config as ``{"model.z_size": 100, ...}``, the way MLflow params are named."""
    container = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        else:
            out[path] = node

    walk(container, prefix)
    return out
