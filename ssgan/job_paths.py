"""Paths in a Hydra job's config that mean the launch folder, also with
``hydra.job.chdir=true`` (the job then runs inside its output folder)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ssgan.job_context import JobContext

# Keys that name files or folders, relative to where the command was started.
PATH_KEYS = ("data.root", "tracking.artifact_root", "serving_dir", "bundle", "output")


def anchor_paths(cfg: DictConfig, job: JobContext) -> None:
    """With ``hydra.job.chdir=true`` the job runs inside its output folder: relative
    paths (the data cache, the MLflow store, the serving folder) still mean the folder
    the command was started from (``job.launch_dir``), as without it."""
    launch = job.launch_dir
    if launch is None or launch.resolve() == Path.cwd().resolve():
        return
    for key in PATH_KEYS:
        value = OmegaConf.select(cfg, key)
        if value and not os.path.isabs(str(value)):
            OmegaConf.update(cfg, key, str(launch / str(value)))
    uri = str(OmegaConf.select(cfg, "tracking.uri", default=""))
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        OmegaConf.update(cfg, "tracking.uri", f"sqlite:///{launch / uri[10:]}")
