"""Structured config schemas: the type of every key in ``conf/``.

The YAML tree in ``conf/`` holds the values; the dataclasses here hold the types, so
Hydra rejects a misspelt key or a wrong type while composing. What types cannot express
(ranges, choices, label budgets) :mod:`ssgan.config_checks` checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

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
class RenderConfig:
    """Strengths of the synthetic renderer's steps (ssgan/data/render.py, docs/data.md)."""

    class_frequencies: str = "svhn"  # svhn (each split's SVHN shares) | uniform
    overlap: float = 0.2  # share of house numbers whose digits touch or overlap
    clutter: float = 0.5  # share of scenes on a textured wall (brick, wood, siding, stone)
    border: float = 0.25  # share with a plate's edge in view
    shadow: float = 0.2  # share with a cast shadow across the plate
    low_contrast: float = 0.15  # share with faint ink
    light_on_dark: float = 0.45  # share with light digits on a darker ground
    defocus: float = 1.2  # largest defocus blur (Gaussian sigma, output pixels)
    motion_blur: float = 0.1  # share with motion blur
    low_res: float = 0.3  # share captured at low resolution and upsampled to 32x32
    saturation: float = 0.85  # colour kept (0 = grey, 1 = as painted)
    noise: float = 4.0  # largest sensor noise (standard deviation, 0-255 scale)
    jpeg_min_quality: int = 30
    jpeg_max_quality: int = 90


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
    render: RenderConfig | None = None  # synthetic only (conf/data/synthetic.yaml)


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


# The splits the data statistics command measures (data_stats.yaml's ``split``).
DATA_STATS_SPLITS = ("train", "test")


@dataclass
class DataStatsAppConfig:
    data: DataConfig = field(default_factory=DataConfig)
    split: str = "train"  # train | test
    output: str = ""  # a markdown file to write the table to; empty = print only


def register_schemas() -> None:
    """Make the schemas available to the defaults lists in ``conf/``."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainAppConfig)
    store.store(name="promote_schema", node=PromoteAppConfig)
    store.store(name="tune_schema", node=TuneAppConfig)
    store.store(name="data_stats_schema", node=DataStatsAppConfig)


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
