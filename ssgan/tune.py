"""Entry point: ``python -m ssgan.tune search=<name> [search.* overrides] [training overrides]``.

A hyperparameter search with Optuna (:mod:`ssgan.sweeps.study`). The same command started
N times (terminals, a SLURM array) runs N workers of one search; ``search.workers=N``
starts them here, ``hydra/launcher=…`` through a Hydra launcher (:mod:`ssgan.sweeps.workers`).
Hydra's own flags (``--help``, ``--cfg job``, ``--info``, ``-sc``) go to Hydra, on
``conf/tune.yaml``; ``--config-dir DIR`` adds the user's folder (``search/mine.yaml``).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from ssgan.cli import CONFIG_DIR, user_errors
from ssgan.completion import complete_console_script
from ssgan.config import register_schemas
from ssgan.console import console_logging
from ssgan.sweeps.plan import check_hydra_flags, hydra_flags, prepare
from ssgan.sweeps.workers import run_worker, search_outcome, start_local, start_with_launcher


@hydra.main(config_path=CONFIG_DIR, config_name="tune", version_base="1.3")
def _hydra_flags(cfg: DictConfig) -> None:
    """Only Hydra's flags come here (they print and return): a search is no Hydra job."""


def main() -> None:
    argv = sys.argv[1:]
    register_schemas()
    if hydra_flags(argv):
        complete_console_script()  # -sc install=bash: for ssgan-tune, which it can complete
        with user_errors():
            check_hydra_flags(argv)  # --cfg with a bad override: one line, as for a search
        _hydra_flags()
        return
    console_logging()  # each trial's run_id and epoch lines, as ssgan.train shows them
    with user_errors():
        plan = prepare(argv)  # bad input: one line before any worker starts
    if plan.search.workers == 1 and not plan.launcher:
        sys.exit(run_worker(argv, plan))
    start = start_with_launcher if plan.launcher else start_local
    sys.exit(search_outcome(plan, start(plan, argv)))  # 0: the search completed


if __name__ == "__main__":
    main()
