"""The checks a run's model passes before it enters the serving folder: a finished run, the
serving contract, the scores its run recorded, ``min_accuracy`` and ``must_beat_live``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ssgan.config import PromoteAppConfig
from ssgan.serving.contract import ExportError, verify_saved_model
from ssgan.serving.labels import stable_version
from ssgan.serving.repository import PromoteError, ServingFolder, read_provenance
from ssgan.serving.verification import (
    VERIFICATION_ARTIFACT,
    VerificationError,
    check_model,
    load_verification_set,
)
from ssgan.tracking.mlflow_model import has_model, run_model_uri
from ssgan.tracking.runs import (
    MODEL_ARTIFACT,
    Run,
    download_artifacts,
    get_run,
    has_artifact,
)
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tags import GIT_DIRTY_TAG


def check_run(cfg: PromoteAppConfig, store: TrackingStore) -> Run:
    """The MLflow run, refused unless FINISHED with a ``model/`` artifact."""
    run_id = cfg.run_id
    run = get_run(store, run_id)
    if run.info.status != "FINISHED":
        raise PromoteError(
            f"run {run_id} is {run.info.status}, not FINISHED: only finished runs can be "
            "promoted (resume an interrupted one with python -m ssgan.train resume=<run_id>)"
        )
    if not has_model(store, run_id):
        raise PromoteError(
            f"run {run_id} has no exported model (no '{MODEL_ARTIFACT}/' artifact): export one "
            f"from its checkpoint with python -m ssgan.export run_id={run_id} output=<folder>"
        )
    return run


def verify_run_model(
    cfg: PromoteAppConfig, store: TrackingStore, run: Run, model_dir: Path, scratch: Path
) -> dict[str, Any]:
    """Contract check, then the run's recorded verification set: the model must give the
    scores recorded when the run exported it. No training data is needed (or made)."""
    run_id = run.info.run_id
    try:
        verify_saved_model(model_dir)
    except ExportError as err:
        detail = str(err).replace(str(model_dir), f"{MODEL_ARTIFACT}/")
        raise PromoteError(f"the model of run {run_id} fails verification: {detail}") from err
    logged = run.data.metrics.get("export/test_accuracy")
    if logged is None:
        raise PromoteError(
            f"run {run_id} logged no export/test_accuracy to check its model against: "
            f"re-export it with python -m ssgan.export run_id={run_id} output=<folder>"
        )
    if not has_artifact(store, run_id, VERIFICATION_ARTIFACT):
        raise PromoteError(
            f"run {run_id} recorded no verification set ('{VERIFICATION_ARTIFACT}'), which "
            "promote checks the model with: runs trained before it was recorded cannot be "
            "promoted; train again"
        )
    path = download_artifacts(store, run_id, VERIFICATION_ARTIFACT, scratch)
    try:
        record = load_verification_set(path)
    except VerificationError as err:
        raise PromoteError(f"run {run_id}: {err}") from err
    checked = check_model(model_dir, record)
    if not checked["max_score_difference"] <= cfg.score_tolerance:
        raise PromoteError(
            f"the model of run {run_id} does not give the scores recorded for its "
            f"{checked['images']} verification images (largest difference "
            f"{checked['max_score_difference']:.4g} > score_tolerance={cfg.score_tolerance}): "
            "it is not the model the run measured; not promoted"
        )
    if abs(record["test_accuracy"] - logged) > cfg.accuracy_tolerance:
        raise PromoteError(
            f"run {run_id} logged export/test_accuracy {logged:.4f} but its verification set "
            f"records {record['test_accuracy']:.4f} on its test set "
            f"(accuracy_tolerance={cfg.accuracy_tolerance}): not promoted"
        )
    accuracy = record["test_accuracy"]
    if accuracy < cfg.min_accuracy:
        raise PromoteError(
            f"test accuracy {accuracy:.4f} is below min_accuracy={cfg.min_accuracy}: not promoted"
        )
    return {
        "accuracy": accuracy,
        "test_images": record["test_images"],
        "test_set_sha256": record["test_set_sha256"],
        "verification_images": checked["images"],
        "verification_max_score_difference": checked["max_score_difference"],
    }


def check_beats_live(folder: ServingFolder, verified: dict[str, Any]) -> None:
    """``must_beat_live``: refuse a model less accurate than the stable version."""
    live = stable_version(folder)
    if live is None:
        return
    record = read_provenance(folder.root / str(live))
    live_accuracy = record.get("verified_test_accuracy")
    if not isinstance(live_accuracy, float):
        raise PromoteError(
            f"must_beat_live=true but stable version {live} has no provenance accuracy "
            "to compare with: promote without must_beat_live"
        )
    if record.get("test_set_sha256") != verified["test_set_sha256"]:
        raise PromoteError(
            f"must_beat_live=true but stable version {live} was scored on another test "
            "set, so the accuracies do not compare: promote without must_beat_live"
        )
    if verified["accuracy"] < live_accuracy:
        raise PromoteError(
            f"test accuracy {verified['accuracy']:.4f} is below stable version {live}'s "
            f"{live_accuracy:.4f} (must_beat_live=true): not promoted"
        )


def provenance_record(
    store: TrackingStore, run: Run, run_cfg: DictConfig, verified: dict[str, Any]
) -> dict[str, Any]:
    model_uri = run_model_uri(store, run.info.run_id)
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "experiment": OmegaConf.select(run_cfg, "tracking.experiment"),
        "tracking_uri": store.uri,
        # The run's MLflow Model; a run logged before models were MLflow Models has its
        # SavedModel under its model/ artifact.
        "artifact_uri": model_uri or f"{run.info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT}",
        "git_commit": run.data.tags.get("mlflow.source.git.commit"),
        "git_dirty": run.data.tags.get(GIT_DIRTY_TAG),
        "verified_test_accuracy": verified["accuracy"],
        "test_images": verified["test_images"],
        "test_set_sha256": verified["test_set_sha256"],
        "verification_images": verified["verification_images"],
        "verification_max_score_difference": verified["verification_max_score_difference"],
        "metrics": dict(run.data.metrics),
        "config": OmegaConf.to_container(run_cfg, resolve=False),
    }
