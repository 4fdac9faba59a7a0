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
