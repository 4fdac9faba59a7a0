"""Runs to promote, made without the training loop: a tiny discriminator exported as a
real SavedModel, scored on the tiny test set and logged as a finished MLflow run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from omegaconf import DictConfig, OmegaConf

from ssgan.cli import compose_config
from ssgan.config import PromoteAppConfig
from ssgan.data import SemiSupervisedData, load_data
from ssgan.models.networks import build_discriminator
from ssgan.serving.images import encode_png
from ssgan.serving.promotion import promote_settings
from ssgan.serving.saved_model import export_saved_model, score_saved_model
from ssgan.serving.verification import save_verification_set
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tracker import RunTracker
from tests.helpers.configs import typed_config
from tests.helpers.stores import seeded_sqlite_uri


@dataclass
class Store:
    root: Path
    cfg: DictConfig  # the composed training config the fake runs were "trained" with
    data: SemiSupervisedData


def make_store(root: Path) -> Store:
    """A private MLflow store and tiny synthetic data under ``root``."""
    cfg = compose_config(
        "config",
        [
            f"data.root={root / 'data'}",
            f"tracking.uri={seeded_sqlite_uri(root / 'mlruns' / 'mlflow.db')}",
            f"tracking.artifact_root={root / 'mlruns' / 'artifacts'}",
            "model.d_size_mult=4",
            "model.g_size_mult=4",
            "model.z_size=8",
            "data.train_size=300",
            "data.test_size=50",
            "data.val_size=50",
            "data.num_labeled=20",
            "data.num_workers=1",
        ],
    )
    return Store(root, cfg, load_data(typed_config(cfg).data, cfg.model.num_classes))


def export_discriminator(store: Store, seed: int) -> Path:
    """A real SavedModel of a freshly initialised tiny discriminator."""
    folder = store.root / f"export-{seed}"
    if not folder.exists():
        keras.utils.set_random_seed(seed)
        classifier = build_discriminator(store.cfg.model)
        export_saved_model(classifier, folder, warmup_images=store.data.test_x[:2])
    return folder


def accuracy_of(store: Store, model_dir: Path) -> float:
    scores = score_saved_model(model_dir, store.data.test_x)
    return float(np.mean(np.argmax(scores, axis=-1) == store.data.test_y))


def log_run(
    store: Store,
    *,
    model_dir: Path | None,
    accuracy: float | None,
    status: str = "FINISHED",
    verified_with: Path | None | str = "model",
    config: DictConfig | None = None,
    mlflow_model: bool = False,
) -> str:
    """A run as training leaves one: config artifact, model, metric, status, and the
    verification set (scored with ``verified_with``, by default the model itself). The
    model is an MLflow Model with ``mlflow_model``, as training logs it now; else a plain
    SavedModel under ``model/``, as runs were logged before."""
    tags = {"mlflow.source.git.commit": "a" * 40, "ssgan.git_dirty": "false"}
    tracker = RunTracker.start(
        TrackingStore(store.cfg.tracking), params={}, tags=tags, run_name="fake"
    )
    tracker.log_text(OmegaConf.to_yaml(config or store.cfg), "config/config.yaml")
    if model_dir is not None and mlflow_model:
        tracker.log_model(model_dir, [encode_png(store.data.test_x[0])], step=0)
    elif model_dir is not None:
        tracker.log_artifacts(model_dir, "model")
    if verified_with == "model":
        verified_with = model_dir
    if verified_with is not None:
        scores = score_saved_model(verified_with, store.data.test_x)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "verification.npz"
            save_verification_set(path, store.data.test_x, store.data.test_y, scores)
            tracker.log_artifact(path, "verification")
    if accuracy is not None:
        tracker.log_metrics({"export/test_accuracy": accuracy}, step=0)
    tracker.finish(status)
    return tracker.run_id


def two_good_runs(store: Store) -> dict[str, str]:
    """Two good runs (different weights), their accuracies logged as training would: "a"
    with an MLflow Model as training logs it, "b" as runs were logged before (a plain
    SavedModel under model/), so every promote test covers both."""
    out = {}
    for name, seed in (("a", 1), ("b", 2)):
        model_dir = export_discriminator(store, seed)
        out[name] = log_run(store, model_dir=model_dir, accuracy=accuracy_of(store, model_dir),
                            mlflow_model=name == "a")  # fmt: skip
    return out


def overrides(store: Store, serving: Path, run_id: str = "", *extra: str) -> list[str]:
    tracking = store.cfg.tracking
    return [
        f"run_id={run_id}",
        f"serving_dir={serving}",
        f"tracking.uri={tracking.uri}",
        f"tracking.artifact_root={tracking.artifact_root}",
        *extra,
    ]


def promote_cfg(store: Store, serving: Path, run_id: str = "", *extra: str) -> PromoteAppConfig:
    """promote's settings for ``run_id`` in ``serving``, composed and checked as the command
    does (a bad override raises ConfigError here)."""
    return promote_settings(compose_config("promote", overrides(store, serving, run_id, *extra)))
