"""The methods study: every method at each label budget over seeds, one training process
per arm, then the summary.

    python experiments/methods/run.py [--seeds 3] [--labels 250,1000] [--methods a,b]
                                      [--dry-run] [-- extra Hydra overrides]

Resumable: an arm whose run (named ``methods-<method>-<labels>-s<seed>``) FINISHED in the
store is skipped, and an interrupted one continues from its last checkpoint
(``resume=auto``), so the same command picks the study up in a later session. Arms run
seed by seed, 1000 labels first, so that a partial study already pairs every method with
the baseline on the same seeds. An arm that fails is reported and the study goes on.
The store is the training default (``sqlite:///mlflow.db`` in this folder, or
``MLFLOW_TRACKING_URI``); ``conf/experiment/methods.yaml`` fixes the scale.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("supervised", "ssgan", "badgan", "mean_teacher", "fixmatch")
BUDGETS = (1000, 250)


def arm_name(method: str, labels: int, seed: int) -> str:
    """The run name that identifies an arm in the store."""
    return f"methods-{method}-{labels}-s{seed}"


def arms(methods: list[str], budgets: list[int], seeds: int) -> list[tuple[str, int, int]]:
    """(method, labels, seed) in the order they run: seed by seed, larger budget first."""
    return [(m, b, s) for s in range(seeds) for b in budgets for m in methods]


def finished_names(overrides: list[str]) -> set[str]:
    """Run names of the study's FINISHED runs in the store the overrides point to."""
    from ssgan.cli import compose_config
    from ssgan.config import TrainAppConfig, typed
    from ssgan.tracking.runs import search_runs
    from ssgan.tracking.store import TrackingStore

    cfg = typed(compose_config("config", ["experiment=methods", *overrides]), TrainAppConfig)
    runs = search_runs(TrackingStore(cfg.tracking), "attributes.status = 'FINISHED'")
    return {run.info.run_name for run in runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--labels", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--dry-run", action="store_true", help="list the arms left, run none")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.labels.split(",")]
    todo = arms(args.methods.split(","), budgets, args.seeds)
    done = finished_names(args.overrides)
    failed = []
    for method, labels, seed in todo:
        name = arm_name(method, labels, seed)
        if name in done:
            continue
        command = [sys.executable, "-m", "ssgan.train", "experiment=methods", f"method={method}",
                   f"data.num_labeled={labels}", f"train.seed={seed}",
                   f"tracking.run_name={name}", "resume=auto", *args.overrides]  # fmt: skip
        print(f"{time.strftime('%H:%M:%S')} {name}: {' '.join(command[1:])}", flush=True)
        if args.dry_run:
            continue
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
            print(f"{name} failed (its run in the store says why); the study goes on", flush=True)
    if failed:
        print(f"failed arms: {', '.join(failed)} (run this command again to retry them)")
        return 1
    if not args.dry_run:
        summary = [sys.executable, str(HERE / "summarize.py"), *args.overrides]
        return subprocess.run(summary, check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
