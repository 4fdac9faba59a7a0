"""Reading runs: look runs up, query them, fetch their artifacts and stored configs.

``Run`` (MLflow's run entity) is named here so other packages can annotate with it
without importing mlflow."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Run, RunTag, ViewType
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from ssgan.config import upgrade_stored_config
from ssgan.errors import DiskFullError, disk_full_reason
from ssgan.tracking.store import TrackingError, TrackingStore
from ssgan.tracking.tags import ERROR_TAG

RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
CONFIG_ARTIFACT = "config/config.yaml"
MODEL_ARTIFACT = "model"


def get_run(store: TrackingStore, run_id: str) -> Run:
    """The run ``run_id`` in the store; one-line TrackingError when malformed or unknown."""
    run_id = str(run_id)
    if not RUN_ID_PATTERN.match(run_id):
        raise TrackingError(
            f"run_id={run_id!r} is not an MLflow run id: expected 32 lowercase hex characters "
            "(see `mlflow ui` or the id printed by ssgan.train)"
        )
    try:
        return store.client.get_run(run_id)
    except MlflowException as err:
        raise TrackingError(
            f"run_id={run_id} was not found in the tracking store {store.uri} "
            "(check tracking.uri / MLFLOW_TRACKING_URI)"
        ) from err


def download_artifacts(
    store: TrackingStore, run_id: str, artifact_path: str, dst_dir: Path
) -> Path:
    """Copy a run's artifact (file or folder) into ``dst_dir``; return the local path."""
    store.use_in_fluent_api()  # runs:/ URIs may resolve through MLflow's global URI
    Path(dst_dir).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=artifact_path,
            dst_path=str(dst_dir),
            tracking_uri=store.uri,
        )
    except (MlflowException, OSError) as err:
        full = disk_full_reason(err, written=dst_dir)
        if full is not None:  # not a missing artifact: no room to copy it here
            raise DiskFullError(
                f"run {run_id}'s artifact '{artifact_path}' could not be downloaded into "
                f"{dst_dir}: {full}"
            ) from err
        raise TrackingError(
            f"run {run_id} has no artifact '{artifact_path}' (was it exported? see `mlflow ui`)"
        ) from err
    return Path(local)


def has_artifact(store: TrackingStore, run_id: str, artifact_path: str) -> bool:
    """Whether a run has a (non-empty) artifact at ``artifact_path``."""
    parent = str(Path(artifact_path).parent) if "/" in artifact_path else ""
    try:
        listing = store.client.list_artifacts(run_id, parent or None)
    except (MlflowException, OSError):
        return False
    return any(item.path == artifact_path for item in listing)


def metric_history(store: TrackingStore, run_id: str, key: str) -> list[Metric]:
    """Every logged point of one metric of a run."""
    return store.client.get_metric_history(run_id, key)


def load_run_config(store: TrackingStore, run_id: str) -> DictConfig:
    """The composed config a run was started with (its ``config/config.yaml`` artifact); a
    malformed or unknown run id is one line saying so, not a missing artifact."""
    get_run(store, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifacts(store, run_id, CONFIG_ARTIFACT, Path(tmp))
        cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise TrackingError(f"run {run_id}'s {CONFIG_ARTIFACT} artifact is not a config mapping")
    return upgrade_stored_config(cfg)


def set_run_tags(store: TrackingStore, run_id: str, tags: dict[str, str]) -> None:
    store.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def mark_failed(store: TrackingStore, run_id: str, reason: str) -> None:
    """End another job's run as FAILED, saying why (its job is gone: see the lease)."""
    set_run_tags(store, run_id, {ERROR_TAG: reason})
    store.client.set_terminated(run_id, status="FAILED")


def search_runs(store: TrackingStore, filter_string: str = "") -> Iterable[Run]:
    """Runs of ``tracking.experiment`` matching an MLflow filter string."""
    experiment_id = store.find_experiment_id()
    if experiment_id is None:
        return []
    return store.client.search_runs([experiment_id], filter_string=filter_string)


def runs_dataframe(store: TrackingStore, filter_string: str = "") -> Any:
    """``mlflow.search_runs`` as a pandas DataFrame (for studies and tables)."""
    store.use_in_fluent_api()  # mlflow.search_runs takes no URI
    return mlflow.search_runs(experiment_names=[store.experiment], filter_string=filter_string)


PARENT_TAG = "mlflow.parentRunId"


def child_runs(store: TrackingStore, parent_id: str, deleted: bool = False) -> list[Run]:
    """Every run whose ``mlflow.parentRunId`` is ``parent_id``, oldest first (``deleted``:
    instead the ones deleted, e.g. with ``mlflow.delete_run``, not yet garbage-collected)."""
    parent = get_run(store, parent_id)
    runs = store.client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.{PARENT_TAG} = '{parent_id}'",
        run_view_type=ViewType.DELETED_ONLY if deleted else ViewType.ACTIVE_ONLY,
        max_results=50_000,
    )
    return sorted(runs, key=lambda r: r.info.start_time or 0)


def newest_parent_run(store: TrackingStore, kind: str | None = None) -> Run | None:
    """The newest sweep parent (tag ``ssgan.sweep_kind``) in ``tracking.experiment``."""
    experiment_id = store.find_experiment_id()
    if experiment_id is None:
        return None
    where = f"tags.`ssgan.sweep_kind` = '{kind}'" if kind else "tags.`ssgan.sweep_kind` != ''"
    runs = store.client.search_runs(
        [experiment_id], filter_string=where, order_by=["attributes.start_time DESC"]
    )
    return runs[0] if runs else None


def log_artifacts_to(store: TrackingStore, run_id: str, local_dir: Path, path: str) -> None:
    """Add a folder to an existing run's artifacts without touching its status."""
    store.client.log_artifacts(run_id, str(local_dir), path)
