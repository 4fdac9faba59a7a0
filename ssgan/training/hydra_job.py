"""The Hydra job around a run (a :class:`~ssgan.job_context.JobContext`): its output folder
and its MLflow run name each other, and its command line and sweep go into the run's
name and tags.

The run is tagged with the folder (``ssgan.hydra_output_dir``; a resumed run with the
latest job's folder) and the folder gets ``mlflow_run_id``; the job's log lines, the
``run_id: …`` one included, go to Hydra's job log there (conf/hydra/job_logging/ssgan.yaml).
When the run ends, that log and the folder's ``.hydra/`` files become its artifacts.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from omegaconf import DictConfig

from ssgan.config import TrackingConfig, TrainAppConfig, typed
from ssgan.config_checks import validate_train_config
from ssgan.console import to_log_files
from ssgan.job_context import JobContext
from ssgan.tracking.runs import PARENT_TAG
from ssgan.tracking.store import check_store
from ssgan.tracking.tags import OUTPUT_DIR_TAG, SWEEP_ID_TAG, SWEEP_JOB_TAG
from ssgan.tracking.tracker import FollowerTracker, RunTracker

RUN_ID_FILE = "mlflow_run_id"

log = logging.getLogger("ssgan.train")


def check_train_config(cfg: DictConfig) -> None:
    """The training config's checks and its store's (a server that does not answer, a
    SQLite file that cannot be made): ``ssgan.train`` runs them before Hydra starts, so a
    refused store leaves no output folder behind."""
    validate_train_config(cfg)
    check_store(typed(cfg.tracking, TrackingConfig))


def link_run(tracker: RunTracker | FollowerTracker, chief: bool, job: JobContext) -> None:
    """Write the run id into the output folder; the chief tags the run with the folder."""
    folder = job.output_dir
    if folder is None:
        return
    (folder / RUN_ID_FILE).write_text(tracker.run_id + "\n")
    if chief:
        assert isinstance(tracker, RunTracker)  # a chief records the run, never follows
        tracker.set_tags({OUTPUT_DIR_TAG: str(folder)})


JOB_FILES_ARTIFACT = "hydra"  # + the output folder's path from the launch folder


def attach_job_files(
    tracker: RunTracker | FollowerTracker, job: JobContext, last_lines: str = ""
) -> None:
    """When the run ends (before a FINISHED run is marked so, after a failed or stopped
    run's status): ``last_lines`` (its summary) into the job's log, then the log and the
    ``.hydra/`` files as the run's artifacts under ``hydra/<output folder>/`` (each job of
    a resumed run keeps its own). Best effort: a copy that fails changes nothing else."""
    folder = job.output_dir
    if last_lines:
        to_log_files(last_lines)
    if folder is None or not isinstance(tracker, RunTracker):
        return
    launch = (job.launch_dir or folder).resolve()
    where = folder.relative_to(launch) if folder.is_relative_to(launch) else folder.name
    for handler in logging.getLogger().handlers:
        handler.flush()
    with contextlib.suppress(Exception):  # one try each, not retried: the run is ending
        for path in sorted([*folder.glob("*.log"), *folder.glob(".hydra/*")]):
            place = Path(JOB_FILES_ARTIFACT) / where / path.parent.relative_to(folder)
            tracker.client.log_artifact(tracker.run_id, str(path), str(place))


def run_name(cfg: TrainAppConfig, job: JobContext) -> str:
    """A new run's name: ``tracking.run_name``, else model, method and the overrides' values."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    shown = [
        o.split(".")[-1]
        for o in job.overrides
        if not o.startswith(("tracking.", "hydra", "data.root", "resume"))
    ]
    base = f"{cfg.model.name}-{cfg.method.name}"
    return base + ("-" + ",".join(shown) if shown else "")


def sweep_tags(job: JobContext) -> dict[str, str]:
    """A multirun job's sweep folder and number, and its grid sweep's parent run."""
    if not job.multirun:
        return {}
    tags = {SWEEP_ID_TAG: str(job.sweep_dir), SWEEP_JOB_TAG: str(job.job_num)}
    if job.parent_run_id:  # named by ssgan.train's grid sweep before Hydra launched the jobs
        tags[PARENT_TAG] = job.parent_run_id
    return tags
