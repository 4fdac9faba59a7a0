"""The Hydra app whose multirun jobs are search workers: ``python -m ssgan.tune …
search.workers=N hydra/launcher=<launcher>`` runs it, so any Hydra launcher starts the
workers (``submitit_slurm``: a SLURM array; ``submitit_local``: the same code path here).

Each job runs the ``ssgan.tune`` command line in ``argv`` as one worker. A job reports
how its worker ended in its log and never raises: the study, not the jobs, holds the
search's outcome, and ``ssgan.tune`` reads it from there when the jobs end.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from ssgan.cli import CONFIG_DIR
from ssgan.job_context import JobContext
from ssgan.runtime import start_tensorflow


@hydra.main(config_path=CONFIG_DIR, config_name="tune_workers", version_base="1.3")
def main(cfg: DictConfig) -> int:
    start_tensorflow()  # the launcher's job process: before the search's modules load it
    from ssgan.sweeps.workers import run_worker

    argv = OmegaConf.to_container(cfg.argv, resolve=False)
    assert isinstance(argv, list)  # conf/tune_workers.yaml's argv is a list
    return run_worker([str(a) for a in argv], job=JobContext.from_hydra())


if __name__ == "__main__":
    main()
