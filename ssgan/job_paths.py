"""Paths in a Hydra job's config that mean the launch folder, also with
``hydra.job.chdir=true`` (the job then runs inside its output folder), and the same paths
as the user wrote them (what a run logs as params, whatever ``hydra.job.chdir``)."""

from __future__ import annotations

import copy
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


def as_written(cfg: DictConfig, job: JobContext) -> DictConfig:
    """``cfg`` with the paths :func:`anchor_paths` made absolute relative to the launch
    folder again (a copy; ``cfg`` itself is not changed): a run's params then read the
    same with and without ``hydra.job.chdir``, so comparing runs shows no false
    differences."""
    launch = job.launch_dir
    if launch is None or launch.resolve() == Path.cwd().resolve():
        return cfg  # nothing was anchored
    written = copy.deepcopy(cfg)
    for key in PATH_KEYS:
        value = OmegaConf.select(written, key)
        if value and Path(str(value)).is_relative_to(launch):
            OmegaConf.update(written, key, os.path.relpath(str(value), launch))
    uri = str(OmegaConf.select(written, "tracking.uri", default=""))
    if uri.startswith("sqlite:////") and Path(uri[10:]).is_relative_to(launch):
        OmegaConf.update(written, "tracking.uri", f"sqlite:///{os.path.relpath(uri[10:], launch)}")
    return written
