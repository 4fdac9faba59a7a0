"""Entry point: ``python -m ssgan.tune search=<name> [search.* overrides] [training overrides]``.

A hyperparameter search with Optuna (:mod:`ssgan.sweeps.study`). The same command started
N times (terminals, a SLURM array) runs N workers of one search; ``search.workers=N``
starts them here, ``hydra/launcher=…`` through a Hydra launcher (:mod:`ssgan.sweeps.workers`).
"""

from __future__ import annotations

from ssgan.runtime import start_tensorflow

start_tensorflow()  # first: quietly, allocator set, before the imports below load TensorFlow

import sys

from ssgan.cli import user_errors
from ssgan.config import register_schemas
from ssgan.console import console_logging
from ssgan.sweeps.plan import prepare
from ssgan.sweeps.workers import run_worker, search_outcome, start_local, start_with_launcher

USAGE = (
    "usage: python -m ssgan.tune search=<name> [search.KEY=VALUE ...] [training overrides]\n"
    "  searches: conf/search/*.yaml (ssgan_lr, smoke); e.g.\n"
    "  python -m ssgan.tune search=ssgan_lr search.n_trials=12 experiment=label_budget\n"
    "  workers: start the same command N times, or add search.workers=N\n"
    "  [hydra/launcher=submitit_slurm hydra.launcher.KEY=VALUE ...] (docs/search.md)"
)


def main() -> None:
    argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return
    register_schemas()
    console_logging()  # each trial's run_id and epoch lines, as ssgan.train shows them
    with user_errors():
        plan = prepare(argv)  # bad input: one line before any worker starts
    if plan.search.workers == 1 and not plan.launcher:
        sys.exit(run_worker(argv, plan))
    start = start_with_launcher if plan.launcher else start_local
    sys.exit(search_outcome(plan, start(plan, argv)))  # 0: the search completed


if __name__ == "__main__":
    main()
