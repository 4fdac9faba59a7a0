"""The Hydra job a command runs as, as one value: its overrides, output folder, sweep folder
and job number, and the grid sweep's parent run.

The entry point builds it once (:meth:`JobContext.from_hydra`) and passes it down; nothing
below reads Hydra's global state. Outside a Hydra job (tests calling ``train(cfg)``,
``ssgan.tune``'s own workers) it is :data:`NO_JOB`.

A grid sweep's parent run is created before Hydra launches the jobs, which may run in other
processes or on other machines; it is named to them in a file in the sweep folder
(:data:`SWEEP_PARENT_FILE`, written by a Hydra callback at the sweep's start).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from ssgan.files import write_atomically

SWEEP_PARENT_FILE = "sweep_parent_run_id"  # in the sweep folder: the grid's parent run id


@dataclass(frozen=True)
class JobContext:
    """What a run needs to know about the Hydra job it is part of."""

    overrides: tuple[str, ...] = ()  # the task overrides on the job's command line
    output_dir: Path | None = None  # the job's output folder; None outside a Hydra job
    multirun: bool = False  # one job of a Hydra multirun (``-m``)
    sweep_dir: str | None = None  # the multirun's sweep folder, as Hydra's config names it
    job_num: int | None = None  # the job's number in its sweep
    parent_run_id: str | None = None  # the grid sweep's parent run, if the sweep has one
    launch_dir: Path | None = None  # where the command was started (Hydra's runtime.cwd)

    @property
    def in_hydra_job(self) -> bool:
        """Whether Hydra runs this job (its command line and output folder are known)."""
        return self.output_dir is not None

    @classmethod
    def from_hydra(cls) -> JobContext:
        """This process's Hydra job, or ``JobContext()`` when Hydra is not initialised."""
        if not HydraConfig.initialized():
            return cls()
        hydra_cfg = HydraConfig.get()
        overrides = tuple(str(o) for o in hydra_cfg.overrides.task)
        output_dir = Path(hydra_cfg.runtime.output_dir).resolve()
        launch_dir = Path(hydra_cfg.runtime.cwd)
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return cls(overrides, output_dir, launch_dir=launch_dir)
        sweep_dir = str(hydra_cfg.sweep.dir)
        return cls(
            overrides,
            output_dir,
            multirun=True,
            sweep_dir=sweep_dir,
            job_num=int(hydra_cfg.job.num),
            parent_run_id=read_sweep_parent(launch_dir / sweep_dir),
            launch_dir=launch_dir,
        )


NO_JOB = JobContext()  # outside a Hydra job: tests calling ``train(cfg)``, ssgan.tune's workers


def write_sweep_parent(sweep_dir: Path, run_id: str) -> None:
    """Name the sweep's parent run in its folder; a reader sees the whole id or no file."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(sweep_dir / SWEEP_PARENT_FILE, run_id + "\n")


def read_sweep_parent(sweep_dir: Path) -> str | None:
    """The parent run id :func:`write_sweep_parent` left in ``sweep_dir``, if any."""
    try:
        return (sweep_dir / SWEEP_PARENT_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None
