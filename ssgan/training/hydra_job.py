"""The Hydra job around a run (a :class:`~ssgan.job_context.JobContext`): its output folder
and its MLflow run name each other, and its command line and sweep go into the run's
name and tags.

The run is tagged with the folder (``ssgan.hydra_output_dir``; a resumed run with the
latest job's folder) and the folder gets ``mlflow_run_id``; the job's log lines, the
``run_id: …`` one included, go to Hydra's job log there (conf/hydra/job_logging/ssgan.yaml).
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from ssgan.config import TrackingConfig, TrainAppConfig, typed
from ssgan.config_checks import validate_train_config
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


def run_name(cfg: TrainAppConfig, job: JobContext) -> str:
    """A new run's name: ``tracking.run_name``, else model, mode and the overrides' values."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    shown = [
        o.split(".")[-1]
        for o in job.overrides
        if not o.startswith(("tracking.", "hydra", "data.root", "resume"))
    ]
    base = f"{cfg.model.name}-{cfg.train.mode}"
    return base + ("-" + ",".join(shown) if shown else "")


def sweep_tags(job: JobContext) -> dict[str, str]:
    """A multirun job's sweep folder and number, and its grid sweep's parent run."""
    if not job.multirun:
        return {}
    tags = {SWEEP_ID_TAG: str(job.sweep_dir), SWEEP_JOB_TAG: str(job.job_num)}
    if job.parent_run_id:  # named by ssgan.train's grid sweep before Hydra launched the jobs
        tags[PARENT_TAG] = job.parent_run_id
    return tags
