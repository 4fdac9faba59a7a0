"""Everything that talks to MLflow. No other module imports mlflow.

Default store: ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
(MLflow 3 refuses its old plain-file store). ``tracking.uri`` or ``MLFLOW_TRACKING_URI``
point runs at a shared tracking server instead.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from ssgan.errors import UserError

# Store set-up notices and artifact progress bars are noise in a training terminal.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)

RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
CONFIG_ARTIFACT = "config/config.yaml"
MODEL_ARTIFACT = "model"
# MLflow's log_batch limits (per call): keep well inside them.
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000


class TrackingError(UserError):
    """A run, store or artifact that cannot be used."""


def _is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


def client_for(tracking_cfg: DictConfig) -> MlflowClient:
    """An MlflowClient on ``tracking.uri``; a local SQLite store's folder is created."""
    uri = str(tracking_cfg.uri)
    if _is_local_sqlite(uri):
        db_path = Path(uri[len("sqlite:///") :])
        db_path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: MlflowClient, tracking_cfg: DictConfig) -> str:
    """Get or create ``tracking.experiment``; local stores keep artifacts in artifact_root."""
    name = str(tracking_cfg.experiment)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if _is_local_sqlite(str(tracking_cfg.uri)):
        location = Path(str(tracking_cfg.artifact_root)).resolve().as_uri()
    try:
        # The kind tag makes MLflow 3's UI open the experiment on its training-runs view.
        return client.create_experiment(
            name,
            artifact_location=location,
            tags={"mlflow.experimentKind": "custom_model_development"},
        )
    except MlflowException:
        # Another process of the same sweep created it between our lookup and create.
        return client.get_experiment_by_name(name).experiment_id


def get_run(tracking_cfg: DictConfig, run_id: str) -> Run:
    """The run ``run_id`` in ``tracking.uri``; one-line TrackingError when malformed or unknown."""
    run_id = str(run_id)
    if not RUN_ID_PATTERN.match(run_id):
        raise TrackingError(
            f"run_id={run_id!r} is not an MLflow run id: expected 32 lowercase hex characters "
            "(see `mlflow ui` or the id printed by ssgan.train)"
        )
    client = client_for(tracking_cfg)
    try:
        return client.get_run(run_id)
    except MlflowException as err:
        raise TrackingError(
            f"run_id={run_id} was not found in the tracking store {tracking_cfg.uri} "
            "(check tracking.uri / MLFLOW_TRACKING_URI)"
        ) from err


def download_artifacts(
    tracking_cfg: DictConfig, run_id: str, artifact_path: str, dst_dir: Path
) -> Path:
    """Copy a run's artifact (file or folder) into ``dst_dir``; return the local path."""
    client_for(tracking_cfg)
    Path(dst_dir).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=artifact_path,
            dst_path=str(dst_dir),
            tracking_uri=str(tracking_cfg.uri),
        )
    except (MlflowException, OSError) as err:
        raise TrackingError(
            f"run {run_id} has no artifact '{artifact_path}' (was it exported? see `mlflow ui`)"
        ) from err
    return Path(local)


def has_artifact(tracking_cfg: DictConfig, run_id: str, artifact_path: str) -> bool:
    """Whether a run has a (non-empty) artifact at ``artifact_path``."""
    client = client_for(tracking_cfg)
    parent = str(Path(artifact_path).parent) if "/" in artifact_path else ""
    try:
        listing = client.list_artifacts(run_id, parent or None)
    except (MlflowException, OSError):
        return False
    return any(item.path == artifact_path for item in listing)


def load_run_config(tracking_cfg: DictConfig, run_id: str) -> DictConfig:
    """The composed config a run was started with (its ``config/config.yaml`` artifact)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifacts(tracking_cfg, run_id, CONFIG_ARTIFACT, Path(tmp))
        return OmegaConf.load(path)


def set_run_tags(tracking_cfg: DictConfig, run_id: str, tags: dict[str, str]) -> None:
    client = client_for(tracking_cfg)
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def register_model_version(
    tracking_cfg: DictConfig,
    name: str,
    run_id: str,
    artifact_path: str = MODEL_ARTIFACT,
    alias: str | None = None,
) -> str:
    """Register a run's exported model in the Model Registry; point ``alias`` at it."""
    client = client_for(tracking_cfg)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    run = client.get_run(run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
    version = client.create_model_version(name, source=source, run_id=run_id)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


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
    return {"mlflow.source.git.commit": commit, "ssgan.git_dirty": str(dirty).lower()}


class RunTracker:
    """One training run in MLflow: params, tags, batched async metrics, artifacts, status.

    Metrics are sent with MLflow's asynchronous logging so the training loop never waits
    on the store. On resume, steps already logged for a metric are not logged again.
    """

    def __init__(self, tracking_cfg: DictConfig, run: Run) -> None:
        self.tracking_cfg = tracking_cfg
        self.client = client_for(tracking_cfg)
        self.run_id = run.info.run_id
        self.artifact_uri = run.info.artifact_uri
        self._last_step: dict[str, int] = {}

    @classmethod
    def start(
        cls, cfg: DictConfig, params: dict[str, Any], tags: dict[str, str], run_name: str
    ) -> RunTracker:
        client = client_for(cfg.tracking)
        exp_id = experiment_id(client, cfg.tracking)
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
        tracker = cls(cfg.tracking, run)
        tracker._log_params(params)
        return tracker

    @classmethod
    def resume(cls, tracking_cfg: DictConfig, run_id: str) -> RunTracker:
        run = get_run(tracking_cfg, run_id)
        tracker = cls(tracking_cfg, run)
        client = tracker.client
        client.update_run(run_id, status="RUNNING")
        for key in run.data.metrics:
            history = client.get_metric_history(run_id, key)
            tracker._last_step[key] = max(m.step for m in history)
        return tracker

    def _log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, "None" if v is None else str(v)) for k, v in params.items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _MAX_PARAMS_PER_BATCH])

    def set_tags(self, tags: dict[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Queue metrics for ``step``; skip any (key, step) a previous attempt already logged."""
        now = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), now, int(step))
            for key, value in metrics.items()
            if step > self._last_step.get(key, -1)
        ]
        for metric in batch:
            self._last_step[metric.key] = int(step)
        for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(
                self.run_id, metrics=batch[i : i + _MAX_METRICS_PER_BATCH], synchronous=False
            )

    def log_artifact(self, local_path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_array(self, array: np.ndarray, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            np.save(path, array)
            self.log_artifact(path, str(Path(artifact_file).parent))

    def log_image(self, image: np.ndarray, artifact_file: str) -> None:
        self.client.log_image(self.run_id, image, artifact_file=artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def local_artifact_dir(self, artifact_path: str) -> Path | None:
        """The local folder of an artifact path when the store keeps artifacts on disk."""
        uri = self.artifact_uri
        if uri.startswith("file://"):
            return Path(uri[len("file://") :]) / artifact_path
        if uri.startswith("/"):
            return Path(uri) / artifact_path
        return None

    def flush(self) -> None:
        mlflow.flush_async_logging()

    def finish(self, status: str, error: str | None = None) -> None:
        """Mark the run FINISHED, FAILED (with the error as a tag) or KILLED."""
        self.flush()
        if error:
            self.set_tags({"ssgan.error": error[:5000]})
        self.client.set_terminated(self.run_id, status=status)


def search_runs(tracking_cfg: DictConfig, filter_string: str = "") -> Iterable[Run]:
    """Runs of ``tracking.experiment`` matching an MLflow filter string."""
    client = client_for(tracking_cfg)
    experiment = client.get_experiment_by_name(str(tracking_cfg.experiment))
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string=filter_string)


def runs_dataframe(tracking_cfg: DictConfig, filter_string: str = "") -> Any:
    """``mlflow.search_runs`` as a pandas DataFrame (for studies and tables)."""
    client_for(tracking_cfg)
    return mlflow.search_runs(
        experiment_names=[str(tracking_cfg.experiment)], filter_string=filter_string
    )


def environment_tags() -> dict[str, str]:
    import tensorflow as tf

    return {
        "ssgan.tensorflow_version": tf.__version__,
        "ssgan.mlflow_version": mlflow.__version__,
        "ssgan.host_cpus": str(os.cpu_count()),
    }
