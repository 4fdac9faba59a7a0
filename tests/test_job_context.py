"""The Hydra job as a value (ssgan/job_context.py): empty outside Hydra, and the grid's
parent run named in the sweep folder, whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssgan.job_context import (
    NO_JOB,
    SWEEP_PARENT_FILE,
    JobContext,
    read_sweep_parent,
    write_sweep_parent,
)

pytestmark = pytest.mark.unit


def test_outside_hydra_the_context_is_empty() -> None:
    job = JobContext.from_hydra()
    assert job == NO_JOB and not job.in_hydra_job and not job.multirun
    assert job.overrides == () and job.parent_run_id is None


def test_the_sweep_parent_is_written_whole_and_read_back(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun" / "2026-12-05" / "11-00-00"
    assert read_sweep_parent(sweep) is None  # no folder, no file: no parent
    write_sweep_parent(sweep, "a" * 32)
    write_sweep_parent(sweep, "b" * 32)  # a new sweep into the same folder replaces it
    assert read_sweep_parent(sweep) == "b" * 32
    assert sorted(p.name for p in sweep.iterdir()) == [SWEEP_PARENT_FILE]  # no leftovers


def test_params_show_paths_as_written_whatever_hydra_job_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With hydra.job.chdir=true the job runs in its output folder and its relative paths
    are anchored to the launch folder; the run's params show them as they were written,
    so runs with and without chdir compare equal (as_written leaves the config alone)."""
    from omegaconf import OmegaConf

    from ssgan.job_paths import anchor_paths, as_written

    written = {"data": {"root": "data"}, "serving_dir": "/srv/serving",
               "tracking": {"uri": "sqlite:///mlflow.db", "artifact_root": "mlruns"}}  # fmt: skip
    job = JobContext(output_dir=tmp_path / "outputs" / "x", launch_dir=tmp_path)
    job.output_dir.mkdir(parents=True)  # type: ignore[union-attr]
    monkeypatch.chdir(job.output_dir)  # type: ignore[arg-type]
    cfg = OmegaConf.create(written)
    anchor_paths(cfg, job)
    assert cfg.data.root == str(tmp_path / "data")  # what the job itself uses
    assert cfg.tracking.uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert OmegaConf.to_container(as_written(cfg, job)) == written
    assert cfg.data.root == str(tmp_path / "data")  # unchanged
    monkeypatch.chdir(tmp_path)  # without chdir nothing was anchored: nothing to undo
    plain = OmegaConf.create(written)
    assert as_written(plain, job) is plain
