"""The job key resume=auto finds a job's runs by: what makes two commands one job, and
the key itself, which runs already in a store carry as a tag."""

from __future__ import annotations

import pytest

from ssgan.training.job import job_key

pytestmark = pytest.mark.unit

SLURM = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
MULTIRUN_JOB = {"sweep": "multirun/2026-01-01/12-00-00", "job": "1"}


@pytest.fixture(autouse=True)
def outside_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SLURM:
        monkeypatch.delenv(name, raising=False)


def test_the_key_is_the_sha256_of_overrides_config_and_job_one_per_line() -> None:
    # Worked out once: sha256 of "data.num_labeled=100\nmodel.z_size=8\nconfig=3f2a\n
    # job=1\nsweep=multirun/2026-01-01/12-00-00", first 32 hex digits. Runs logged by an
    # earlier version carry keys made this way: another recipe would strand them.
    overrides = ["model.z_size=8", "resume=auto", "data.num_labeled=100"]
    assert job_key(overrides, MULTIRUN_JOB, "3f2a") == "c97397e7267b93056bea74e7c53e97c7"


def test_override_order_resume_and_hydra_flags_do_not_matter_what_is_trained_does() -> None:
    key = job_key(["a=1", "b=2"], {}, "cfg")
    assert job_key(["b=2", "a=1", "resume=auto", "hydra.job.chdir=true"], {}, "cfg") == key
    others = {
        job_key(["a=1", "b=3"], {}, "cfg"),  # another value
        job_key(["a=1", "b=2"], {}, "other"),  # the same line, another experiment file
        job_key(["a=1", "b=2"], MULTIRUN_JOB, "cfg"),  # one job of a multirun
        job_key(["a=1", "b=2"], {**MULTIRUN_JOB, "job": "2"}, "cfg"),  # its next job
    }
    assert key not in others and len(others) == 4


def test_a_requeued_slurm_job_keeps_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    alone = job_key(["a=1"], {})
    monkeypatch.setenv("SLURM_JOB_ID", "100")
    first = job_key(["a=1"], {})
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    assert len({alone, first, job_key(["a=1"], {})}) == 3  # a plain job is its id
    # An array task gets a new SLURM_JOB_ID when requeued: its array and task ids decide.
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "200")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    task = job_key(["a=1"], {})
    monkeypatch.setenv("SLURM_JOB_ID", "102")
    assert job_key(["a=1"], {}) == task
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    assert job_key(["a=1"], {}) != task


def test_a_sweep_job_is_its_folder_and_number_whatever_the_scheduler_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep's command run again in its folder submits new SLURM jobs: the same key,
    so resume=auto continues their runs (as a requeue does)."""
    before = job_key(["a=1"], MULTIRUN_JOB)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "200")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "201")
    assert job_key(["a=1"], MULTIRUN_JOB) == before
    assert job_key(["a=1"], {**MULTIRUN_JOB, "job": "2"}) != before
