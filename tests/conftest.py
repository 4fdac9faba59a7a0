"""Shared fixtures: tiny configs composed by the real Hydra tree, isolated stores."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

import ssgan  # noqa: F401  (imports TensorFlow quietly before anything else)
from ssgan.cli import compose_config

REPO_ROOT = Path(__file__).resolve().parent.parent
# One synthetic data cache for the session: the smoke set is rendered once, not by every
# test (the cache is keyed by every parameter that changes pixels, locked while written
# and renamed into place, so tests and their subprocesses share it safely).
SHARED_DATA_ROOT = Path(tempfile.mkdtemp(prefix="ssgan-test-data-"))
atexit.register(shutil.rmtree, SHARED_DATA_ROOT, True)


def tiny_overrides(root: Path) -> list[str]:
    """The smoke preset, with a private MLflow store under ``root`` and the session's
    shared data cache."""
    return [
        "experiment=smoke",
        f"data.root={SHARED_DATA_ROOT}",
        f"tracking.uri=sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        f"tracking.artifact_root={root / 'mlruns' / 'artifacts'}",
    ]


def write_svhn_mat(path: Path, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small file in SVHN's exact layout: X (32, 32, 3, N) uint8, y (N, 1) in 1..10.
    Returns the images as (N, 32, 32, 3) and the digits 0-9 (label 10 is digit 0)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    digits = np.arange(count) % 10
    labels = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)
    scipy.io.savemat(str(path), {"X": np.transpose(images, (1, 2, 3, 0)), "y": labels})
    return images, digits


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> DictConfig:
    return compose_config("config", tiny_overrides(tmp_path))


def run_cli(module: str, *args: str, cwd: Path, env: dict | None = None, timeout: int = 300):
    """Run ``python -m <module> args`` the way a user would; return the CompletedProcess."""
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
    from ssgan.training.run import train

    root = tmp_path_factory.mktemp("smoke")
    cfg = compose_config("config", tiny_overrides(root))
    summary = train(cfg)
    return {"summary": summary, "cfg": cfg, "root": root}


def logged_model_files(client: MlflowClient, run_id: str) -> list[str]:
    """The files of the one MLflow Model (LoggedModel) that ``run_id`` logged, read with
    ``client``'s own store (MLflow resolves ``runs:/<id>/model`` through the process's
    global tracking URI, which a test process that trained nothing has not set)."""
    experiment = client.get_run(run_id).info.experiment_id
    models = [m for m in client.search_logged_models([experiment]) if m.source_run_id == run_id]
    assert len(models) == 1, models
    return [f.path for f in client.list_logged_model_artifacts(models[0].model_id)]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on localhost right now."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_until_answered(url: str, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Poll ``url`` until it answers; fail if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            assert process.poll() is None, f"{what} exited"
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.5)


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """A real MLflow tracking server on localhost with its own store under ``root``;
    yields its URI once it answers (a loaded machine can take minutes to start it, and
    runs check the server before any work)."""
    port = free_ports(1)[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "served-artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_answered(f"{uri}/health", server, 300, "the MLflow server")
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)
