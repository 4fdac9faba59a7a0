"""Entry point: ``python -m ssgan.tune search=<name> [search.* overrides] [training overrides]``.

A hyperparameter search with Optuna (:mod:`ssgan.sweeps.study`).
"""

from __future__ import annotations

import sys

from ssgan.cli import console_logging, user_errors
from ssgan.config import register_schemas
from ssgan.sweeps.study import prepare, run_search, study_lock, summary_text

USAGE = (
    "usage: python -m ssgan.tune search=<name> [search.KEY=VALUE ...] [training overrides]\n"
    "  searches: conf/search/*.yaml (ssgan_lr, smoke); e.g.\n"
    "  python -m ssgan.tune search=ssgan_lr search.n_trials=12 experiment=label_budget"
)


def main() -> None:
    argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return
    register_schemas()
    console_logging()  # each trial's run_id and epoch lines, as ssgan.train shows them
    with user_errors():
        plan = prepare(argv)
        with study_lock(plan):
            try:
                summary = run_search(plan)
            except KeyboardInterrupt as stopped:  # Ctrl-C, or a stop signal (JobStopped)
                print(
                    f"{str(stopped) or 'interrupted'}: the search is marked KILLED; run the same "
                    "command to continue",
                    file=sys.stderr,
                )
                sys.exit(getattr(stopped, "exit_status", 130))
    print(summary_text(summary))


if __name__ == "__main__":
    main()
