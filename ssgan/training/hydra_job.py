"""The Hydra job around a run: its output folder and its MLflow run name each other.

The run is tagged with the folder (``ssgan.hydra_output_dir``; a resumed run with the
latest job's folder) and the folder gets ``mlflow_run_id``; the job's log lines, the
``run_id: …`` one included, go to Hydra's job log there (conf/hydra/job_logging/ssgan.yaml).
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from ssgan.tracking.tags import OUTPUT_DIR_TAG
from ssgan.tracking.tracker import FollowerTracker, RunTracker

RUN_ID_FILE = "mlflow_run_id"

log = logging.getLogger("ssgan.train")


def output_dir() -> Path | None:
    """This Hydra job's output folder, or None outside a Hydra job (tests, ssgan.tune)."""
    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir).resolve()


def in_multirun() -> bool:
    """Whether this process is one job of a Hydra multirun (``-m``)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def link_run(tracker: RunTracker | FollowerTracker, chief: bool) -> None:
    """Write the run id into the output folder; the chief tags the run with the folder."""
    folder = output_dir()
    if folder is None:
        return
    (folder / RUN_ID_FILE).write_text(tracker.run_id + "\n")
    if chief:
        assert isinstance(tracker, RunTracker)  # a chief records the run, never follows
        tracker.set_tags({OUTPUT_DIR_TAG: str(folder)})
