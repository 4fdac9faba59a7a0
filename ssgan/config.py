"""Structured config schemas: the type of every key in ``conf/``.

The YAML tree in ``conf/`` holds the values; the dataclasses here hold the types, so
Hydra rejects a misspelt key or a wrong type while composing. What types cannot express
(ranges, choices, label budgets) :mod:`ssgan.config_checks` checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ssgan.bench_config import BENCH_SCHEMAS, BenchConfig
from ssgan.method_config import METHOD_SCHEMAS, MethodConfig

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    """``model.*``: the networks (docs/model.md). The defaults are the tutorial's GAN:
    G = dense to 4x4 + three stride-2 5x5 transposed convolutions (batch norm, tanh out);
    D = seven 3x3 convolutions 64/64/64/128/128/128/128 with dropout, batch norm and leaky
    ReLU, global average pooling, class logits."""

    name: str = "tutorial"  # tutorial | improved_gan (Salimans et al.'s SVHN model)
    z_size: int = 100
    g_size_mult: int = 32  # generator width: channels of the last hidden layer
    d_size_mult: int = 64  # discriminator width: 64 gives 64/64/64/128/.../128
    drop_rate: float = 0.5
    dropout_mask: str = "uniform"  # uniform (Keras: a float per element) | byte (faster)
    leaky_alpha: float = 0.2
    num_classes: int = 10


@dataclass(frozen=True)
class RenderConfig:
    """``data.render.*``: strengths of the synthetic renderer's steps (ssgan/data/render.py,
    docs/data.md); a "share" is the probability that an image gets the effect."""

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
    jpeg_min_quality: int = 30  # JPEG quality drawn per image from this range
    jpeg_max_quality: int = 90


@dataclass(frozen=True)
class DataConfig:
    """``data.*``: which digits, the label budget and the batches (docs/data.md)."""

    name: str = "synthetic"  # svhn | synthetic
    root: str = "data"  # where data sets are cached (conf/data/ reads SSGAN_DATA_ROOT)
    verify: bool = True  # svhn: check the MD5 of files found in root
    download: bool = True  # svhn: fetch missing files (needs internet)
    use_extra: bool = False  # svhn: add the 531,131 'extra' images to the unlabelled pool
    num_labeled: int = 1000  # class-balanced labelled budget; the rest is used unlabelled
    val_size: int = 5000  # held out from the training set for model selection
    batch_size: int = 128
    seed: int = 0  # picks the labelled subset and the validation split
    synthetic_seed: int = 0  # synthetic: which images are drawn (kept apart from data.seed)
    # How many training and test images: synthetic, how many to generate; svhn, the sizes
    # of its files (conf/data/svhn.yaml; the data package's svhn_reference.SPLIT_SIZES),
    # which label budgets are checked against before any file is read.
    train_size: int = 50_000
    test_size: int = 10_000
    num_workers: int = 0  # generator processes; 0 = one per CPU core
    render: RenderConfig | None = None  # synthetic only (conf/data/synthetic.yaml)


@dataclass(frozen=True)
class TrainConfig:
    """``train.*``: the optimiser and the loop (docs/training.md); the method is
    ``method.*`` (:mod:`ssgan.method_config`)."""

    epochs: int = 10
    steps_per_epoch: int = 0  # 0 = one pass over the unlabelled pool per epoch
    lr: float = 3e-4  # Adam, as in the tutorial
    beta1: float = 0.5
    lr_decay: float = 1.0  # multiplied into the learning rate after every epoch
    lr_schedule: str = "constant"  # constant | linear_decay (improved-gan: constant, then to 0)
    lr_decay_start_epoch: int | None = None  # linear_decay: None = 2/3 of the epochs
    adam_epsilon: float = 1e-7  # Keras' default; 1e-4 approximates the reference code's
    init_batch_size: int = 0  # images data-dependent init (improved_gan) sees; 0 = one batch
    ema_decay: float = 0.0  # > 0: evaluate and export averaged D weights (e.g. 0.999)
    ema_bn_images: int = 2048  # real images the average's batch-norm statistics come from
    seed: int = 0
    deterministic: bool = False  # op-determinism: bit-identical runs and resumes on CPU
    log_every: int = 50  # steps between train/ metrics
    checkpoint_every: int = 500  # steps between checkpoints (plus one per epoch)
    # Also checkpoint once this many seconds passed since the last one (0 = off): a
    # preempted or killed job loses at most this much work whatever a step costs.
    checkpoint_every_s: float = 600.0
    steps_per_loop: int = 10  # steps per compiled call; calls end at every log, checkpoint
    eval_batch_size: int = 500
    sample_grid: bool = True  # 8x8 generator samples per epoch under samples/
    strategy: str = "default"  # default | mirrored | multi_worker (tf.distribute)
    cpu_replicas: int = 0  # mirrored without GPUs: split the CPU into N logical devices
    worker_wait_s: float = 300.0  # multi_worker: how long to wait for the other workers
    precision: str = "fp32"  # fp32 | bf16 | fp16 (mixed precision)
    jit_compile: bool = False  # XLA; see docs/model.md, 'Step time'


@dataclass(frozen=True)
class TrackingConfig:
    """``tracking.*``: the MLflow store (docs/tracking.md)."""

    # MLflow 3's own default store, so `mlflow ui` in the launch folder finds the runs
    uri: str = "sqlite:///mlflow.db"  # conf/tracking/ lets MLFLOW_TRACKING_URI win
    artifact_root: str = "mlruns"  # where a new experiment keeps its artifacts (as MLflow)
    experiment: str = "ssgan"  # conf/tracking/ lets MLFLOW_EXPERIMENT_NAME win
    run_name: str = ""  # empty = built from the command-line overrides
    # One request to the store (HTTP, or waiting for a locked SQLite file) may take this
    # long before it counts as failed; failed writes are retried for retry_s, then the run
    # fails.
    timeout_s: float = 10.0
    retry_s: float = 120.0
    # A job owns its run while it renews this lease every lease_s/3; a job that died on
    # another host frees the run after lease_s (on the same host at once).
    lease_s: float = 60.0
    # MLflow's system/* metrics (CPU, memory, disk, network, GPU) sampled with psutil; also
    # MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.
    system_metrics: bool = False


@dataclass(frozen=True)
class TrainAppConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)  # conf/method/ picks the schema
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    resume: str | None = None  # MLflow run id of an interrupted run (or auto) to continue


@dataclass(frozen=True)
class PrunerConfig:
    """``search.pruner.*``: when a trial stops early (docs/search.md)."""

    name: str = "median"  # none | median | percentile | threshold | successive_halving | hyperband
    n_startup_trials: int = 3  # median, percentile: trials that always run to the end first
    n_warmup_steps: int = 1  # median, percentile, threshold: first epoch a trial may be pruned
    percentile: float = 25.0  # percentile: prune below this percentile of the other trials
    lower: float = 0.0  # threshold: prune when validation accuracy is below this
    min_resource: int = 1  # successive_halving, hyperband: epochs every trial gets
    reduction_factor: int = 3  # successive_halving, hyperband


@dataclass(frozen=True)
class SearchConfig:
    """``search.*``: a hyperparameter search's space and budget (docs/search.md)."""

    name: str = ""
    n_trials: int = 20
    sampler: str = "tpe"  # tpe | random | cmaes | gp | qmc | nsga2 (docs/search.md)
    # tpe, cmaes, gp: trials drawn at random before the sampler models the results;
    # nsga2: its population (at least 2)
    n_random_trials: int = 5
    seed: int = 0  # sampler seed: an uninterrupted search proposes the same trials
    baseline: bool = True  # first trial: the base config's own values, for comparison
    # Empty = the journal file optuna.journal beside the MLflow store; a path (shared file
    # system) or postgresql://… (docs/search.md).
    storage: str = ""
    workers: int = 1  # worker processes this command starts; or start it N times
    threads_per_worker: int = 0  # TensorFlow threads per worker; 0 = TF's own (cores/N)
    enqueue: list[Any] = field(default_factory=list)  # trials to run first: [{train: {lr: 1e-3}}]
    space: dict[str, Any] = field(default_factory=dict)  # mirrors the training config
    pruner: PrunerConfig = field(default_factory=PrunerConfig)


@dataclass(frozen=True)
class TuneAppConfig(TrainAppConfig):
    """``python -m ssgan.tune``: the training config every trial starts from, and the search."""

    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass(frozen=True)
class PromoteAppConfig:
    """The promote command's settings (docs/promote.md)."""

    run_id: str = ""  # the MLflow run whose exported model to promote
    model_name: str = "ssgan"  # serving/<model_name>/<version>/
    serving_dir: str = "serving"
    min_accuracy: float = 0.0  # refuse models whose verified test accuracy is below this
    must_beat_live: bool = False  # refuse models worse than the stable version
    force: bool = False  # promote again a run that a version already holds
    list: bool = False  # print the served versions instead of promoting
    accuracy_tolerance: float = 0.01  # logged test accuracy may differ this much from recorded
    score_tolerance: float = 0.001  # recorded verification images' scores may differ this much
    alias: str = "production"  # MLflow Model Registry alias that follows the stable label
    canary_alias: str = "canary"  # MLflow Model Registry alias that follows the canary label
    label: str = "stable"  # the version label (stable | canary) given to the new version
    version: int = 0  # with label= and no run_id: move the label to this existing version
    server_model_dir: str = "/models"  # serving_dir inside TF Serving (models.config paths)
    bundle: str = ""  # write the hand-over bundle (image context, manifests) to this new folder
    image: str = "ssgan-serving"  # image repository the bundle's manifests and build use
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass(frozen=True)
class RemovedKey:
    """A key the schemas no longer have: the value every run had, and what to do instead."""

    value: Any
    instead: str


# Overrides and presets that set these get one line saying so; configs stored by earlier
# runs still load (:func:`upgrade_stored_config`) and keep their job keys (the value is
# still hashed, see training/resume.py), so those runs resume and promote as before.
REMOVED_KEYS = {
    "model.image_size": RemovedKey(32, "the networks read 32x32 images only; drop the key"),
    "train.mode": RemovedKey(
        "ssgan", f"choose the method with method=<name> ({', '.join(METHOD_SCHEMAS)})"
    ),
    "train.feature_matching": RemovedKey(
        "squared_l2", "it is method.feature_matching (method=ssgan or badgan)"
    ),
    "train.unsupervised_weight": RemovedKey(
        1.0, "it is method.unsupervised_weight (method=ssgan or badgan)"
    ),
}

# train.* keys that became method.* keys when methods became a config group.
MOVED_TO_METHOD = ("feature_matching", "unsupervised_weight")


def upgrade_stored_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` (a config an earlier run stored) in today's layout: keys in
    :data:`REMOVED_KEYS` dropped, and a run from before the ``method`` group given the
    method its ``train.mode`` named (``ssgan`` keeps its feature-matching keys)."""
    train = cfg.get("train")
    if "method" not in cfg and isinstance(train, DictConfig):
        name = str(train.get("mode", "ssgan"))
        method: dict[str, Any] = {"name": name}
        if name == "ssgan":
            method |= {key: train[key] for key in MOVED_TO_METHOD if key in train}
        cfg.method = method
    for dotted in REMOVED_KEYS:
        section, _, key = dotted.rpartition(".")
        node = OmegaConf.select(cfg, section) if section else cfg
        if isinstance(node, DictConfig) and key in node:
            node.pop(key)
    return cfg


# The splits the data statistics command measures (data_stats.yaml's ``split``).
DATA_STATS_SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataStatsAppConfig:
    data: DataConfig = field(default_factory=DataConfig)
    split: str = "train"  # train | test
    output: str = ""  # a markdown file to write the table to; empty = print only


# The metrics a sweep report tabulates unless ``metrics=[...]`` names others.
REPORT_METRICS = ("best/val_accuracy", "best/test_accuracy")


@dataclass(frozen=True)
class ReportAppConfig:
    """``python -m ssgan.report``: a sweep's tables and plots (docs/search.md)."""

    parent_run_id: str = MISSING  # the sweep's parent run (the sweep prints it)
    output: str = ""  # the folder to write; empty = reports/<parent_run_id>/
    metrics: list[str] = field(default_factory=lambda: list(REPORT_METRICS))  # tabulated
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass(frozen=True)
class ExportAppConfig:
    """``python -m ssgan.export``: a run's checkpoint as a new SavedModel (docs/serving.md)."""

    run_id: str = MISSING  # the MLflow run whose checkpoint to export
    output: str = MISSING  # the folder to create; it must not exist yet
    checkpoint: str = "best"  # best (the classifier its best evaluation used) | last
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass(frozen=True)
class BenchAppConfig(TrainAppConfig):
    """``python -m ssgan.bench``: the training config the benchmark measures, and the
    benchmark (``bench=train|serve``, :mod:`ssgan.bench_config`)."""

    bench: BenchConfig = field(default_factory=BenchConfig)  # conf/bench/ picks the schema


# Sections whose schema is the one their group option names in ``name``: the declared
# base, and the options' schemas.
GROUP_SCHEMAS: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "method": (MethodConfig, METHOD_SCHEMAS),
    "bench": (BenchConfig, BENCH_SCHEMAS),
}


def register_schemas() -> None:
    """Make the schemas available to the defaults lists in ``conf/``, once per process.

    Building the structured nodes took a third of each composition (0.2 of 0.6 s); Hydra
    deep-copies a stored node on every load, so storing them once is safe."""
    store = ConfigStore.instance()
    if f"{next(iter(SCHEMAS))}.yaml" in store.repo:
        return
    for name, schema in SCHEMAS.items():
        store.store(name=name, node=_composable(OmegaConf.structured(schema)))
    # conf/method/<name>.yaml and conf/bench/<name>.yaml select these
    for group, (_, options) in GROUP_SCHEMAS.items():
        for name, option in options.items():
            node = _composable(OmegaConf.structured(option))
            store.store(group=group, name=f"{name}_schema", node=node)


SCHEMAS: dict[str, type] = {
    "train_schema": TrainAppConfig,
    "promote_schema": PromoteAppConfig,
    "tune_schema": TuneAppConfig,
    "data_stats_schema": DataStatsAppConfig,
    "report_schema": ReportAppConfig,
    "export_schema": ExportAppConfig,
    "bench_schema": BenchAppConfig,
}


def _composable(node: DictConfig) -> DictConfig:
    """``node`` with OmegaConf's read-only flags cleared. The schemas are frozen so that
    the values commands pass down cannot change under them; OmegaConf marks a frozen
    dataclass's nodes read-only, which would stop Hydra from applying the overrides. The
    node keeps its dataclass type, so :func:`typed` still builds the frozen values."""
    OmegaConf.set_readonly(node, None)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _composable(child)
    return node


def typed(cfg: DictConfig, schema: type[T]) -> T:
    """The composed (and checked) config as its frozen schema value: what a command
    passes below it instead of the DictConfig (docs/architecture.md, "small values
    travel")."""
    base = _composable(OmegaConf.structured(schema))
    for section, (declared, options) in GROUP_SCHEMAS.items():
        if isinstance(cfg.get(section), DictConfig) and section in base:
            # The option's own schema: a stored (untyped) config's method keys need it.
            name = str(cfg[section].get("name", declared().name))
            chosen = options.get(name, declared)
            base[section] = _composable(OmegaConf.structured(chosen))
    node = OmegaConf.merge(base, cfg)
    value = OmegaConf.to_object(node)
    assert isinstance(value, schema)
    return value


def flatten(cfg: DictConfig | SearchConfig, prefix: str = "") -> dict[str, Any]:
    """The config (composed, or a schema value) as ``{"model.z_size": 100, ...}``, the
    way MLflow params are named."""
    if isinstance(cfg, DictConfig):
        container: Any = OmegaConf.to_container(cfg, resolve=True)
    else:
        container = dataclasses.asdict(cfg)
    out: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        else:
            out[path] = node

    walk(container, prefix)
    return out
