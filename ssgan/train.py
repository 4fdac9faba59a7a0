"""Entry point: ``python -m ssgan.train [overrides]`` (also ``ssgan-train``): Hydra composes the
config, :func:`ssgan.training.run.train` runs it, a sweep (``-m``) gets a parent run."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from ssgan import cli
from ssgan.completion import complete_console_script
from ssgan.config import register_schemas
from ssgan.console import echo
from ssgan.job_context import JobContext
from ssgan.job_paths import anchor_paths
from ssgan.runtime import start_tensorflow
from ssgan.sweeps.grid import grid_parent, is_grid_sweep, parent_callback, start_grid
from ssgan.training.hydra_job import check_train_config
from ssgan.training.job import pass_on


@hydra.main(config_path=cli.CONFIG_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    start_tensorflow()  # a launcher may run this job in a process of its own: first there too
    from ssgan.training.run import StoppedRun, train

    anchor_paths(cfg, job := JobContext.from_hydra())  # hydra.job.chdir=true: same paths
    with cli.user_errors():
        try:
            summary = train(cfg, job=job)
        except StoppedRun as stopped:
            echo(
                f"{stopped}: run {stopped.run_id} is marked KILLED; continue it with "
                f"python -m ssgan.train resume={stopped.run_id}",
                error=True,
            )
            if stopped.signal is not None:
                pass_on(stopped.signal)  # e.g. submitit's handler, which requeues the job
            sys.exit(stopped.exit_status)
        except KeyboardInterrupt as stopped:
            echo(f"{str(stopped) or 'interrupted'}: before a run was started", error=True)
            sys.exit(getattr(stopped, "exit_status", 130))
    print(summary.text())


def main() -> None:
    # TensorFlow starts in _hydra_main: --help, --cfg and a refused override do without it.
    register_schemas()
    complete_console_script()  # -sc install=bash: for ssgan-train, which it can complete
    with cli.user_errors():
        cli.check_overrides("config", sys.argv[1:], check_train_config)
        parent = start_grid(sys.argv[1:]) if is_grid_sweep(sys.argv[1:]) else None
    with grid_parent(parent, sys.argv[1:]), cli.hydra_output_errors():
        sys.argv += parent_callback(parent)  # the jobs find the parent through it
        _hydra_main()


if __name__ == "__main__":
    main()
