"""Where a run's code came from: MLflow's run context, git state and environment tags."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from pathlib import Path

import mlflow
from mlflow.tracking.context.registry import resolve_tags

from ssgan import host
from ssgan.tracking.tags import (
    GIT_DIRTY_TAG,
    HOST_CPU_TAG,
    HOST_CPUS_TAG,
    MLFLOW_VERSION_TAG,
    SSGAN_VERSION_TAG,
    TENSORFLOW_VERSION_TAG,
)


def git_state(start: Path | None = None) -> dict[str, str]:
    """Commit and dirtiness of the source tree the code runs from (empty if not a repo)."""
    where = str(start or Path(__file__).resolve().parent)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": commit, GIT_DIRTY_TAG: str(dirty).lower()}


def run_context_tags() -> dict[str, str]:
    """MLflow's own run context (``mlflow.user``, ``mlflow.source.name`` and ``.type``, the
    git commit, branch and repository of the entry file) over the git state of the
    package's checkout: MLflow finds git only when the started file lies in a checkout,
    not for a console script in a virtual environment. ``ssgan.git_dirty`` is ours only,
    and ``ssgan.version``, which names the code where there is no checkout (a wheel)."""
    return {**ssgan_version(), **git_state(), **resolve_tags()}


def ssgan_version() -> dict[str, str]:
    """The installed ssgan's version from its package metadata: with no git checkout (a
    wheel in a virtual environment) the only record of which code ran; empty when the
    package is not installed (a bare PYTHONPATH)."""
    try:
        return {SSGAN_VERSION_TAG: importlib.metadata.version("ssgan")}
    except importlib.metadata.PackageNotFoundError:
        return {}


def environment_tags() -> dict[str, str]:
    import tensorflow as tf

    return {
        TENSORFLOW_VERSION_TAG: tf.__version__,
        MLFLOW_VERSION_TAG: mlflow.__version__,
        HOST_CPUS_TAG: str(os.cpu_count()),
        HOST_CPU_TAG: host.cpu().describe(),
    }
