"""Shared fixtures: tiny configs composed by the real Hydra tree, isolated stores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

import ssgan  # noqa: F401  (imports TensorFlow quietly before anything else)
from ssgan.cli import compose_config

REPO_ROOT = Path(__file__).resolve().parent.parent


def tiny_overrides(root: Path) -> list[str]:
    """The smoke preset, pointed at a private data cache and MLflow store under ``root``."""
    return [
        "experiment=smoke",
        f"data.root={root / 'data'}",
        f"tracking.uri=sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        f"tracking.artifact_root={root / 'mlruns' / 'artifacts'}",
    ]


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> DictConfig:
    return compose_config("config", tiny_overrides(tmp_path))


def run_cli(module: str, *args: str, cwd: Path, env: dict | None = None, timeout: int = 300):
    """Run ``python -m <module> args`` the way a user would; return the CompletedProcess."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One finished smoke training run, shared by the tests that only read it."""
    from ssgan.train import train

    root = tmp_path_factory.mktemp("smoke")
    cfg = compose_config("config", tiny_overrides(root))
    summary = train(cfg)
    return {"summary": summary, "cfg": cfg, "root": root}
