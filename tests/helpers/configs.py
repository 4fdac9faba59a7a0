"""Tiny training configs and the session's shared synthetic data cache."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from ssgan.config import TrainAppConfig, typed
from tests.helpers.stores import seeded_sqlite_uri

# One synthetic data cache for the session: the smoke set is rendered once, not by every
# test (the cache is keyed by every parameter that changes pixels, locked while written
# and renamed into place, so tests and their subprocesses share it safely).
SHARED_DATA_ROOT = Path(tempfile.mkdtemp(prefix="ssgan-test-data-"))
atexit.register(shutil.rmtree, SHARED_DATA_ROOT, True)


def tiny_overrides(root: Path, *, seeded: bool = True) -> list[str]:
    """The smoke preset, with a private MLflow store under ``root`` and the session's
    shared data cache. The store is seeded (:mod:`tests.helpers.stores`): it exists from
    here on; ``seeded=False`` for a test that checks a command leaves ``root`` empty."""
    db = root / "mlruns" / "mlflow.db"
    return [
        "experiment=smoke",
        f"data.root={SHARED_DATA_ROOT}",
        f"tracking.uri={seeded_sqlite_uri(db) if seeded else f'sqlite:///{db}'}",
        f"tracking.artifact_root={root / 'mlruns' / 'artifacts'}",
    ]


def typed_config(cfg: DictConfig) -> TrainAppConfig:
    """A composed training config as the frozen value the commands pass below them."""
    return typed(cfg, TrainAppConfig)
