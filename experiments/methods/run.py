"""The methods study: every method at each label budget over seeds, one training process
per arm, each added to the ledger and the summary as it finishes.

    python experiments/methods/run.py [--seeds 3] [--labels 250,1000] [--methods a,b]
                                      [--dry-run] [-- extra Hydra overrides]

Resumable: an arm (run name ``methods-<method>-<labels>-s<seed>``) in the study's ledger
``runs.jsonl`` or FINISHED in the store is skipped, and an interrupted one continues from
its last checkpoint (``resume=auto``), so the same command picks the study up in a later
session; after each arm the summary adds it to the ledger, which is committed, so a fresh
checkout on another machine goes on where the last one stopped. Arms run 1000 labels
first (the goals and the paired tests are there), seed by seed, so that a partial study
already pairs every method with the baseline on the same seeds. An arm that fails is
reported and the study goes on. The store is the training default (``sqlite:///mlflow.db``
in this folder, or ``MLFLOW_TRACKING_URI``); ``conf/experiment/methods.yaml`` fixes the
scale.
"""

from __future__ import annotations

import argparse
import json
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
    """(method, labels, seed) in the order they run: budget by budget as given, seed by
    seed within one, every method on a seed before the next seed."""
    return [(m, b, s) for b in budgets for s in range(seeds) for m in methods]


def ledger_names(ledger: Path) -> set[str]:
    """Run names of the arms the study's ledger holds (summarize.py writes it)."""
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    return {json.loads(line)["name"] for line in lines if line.strip()}


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
    parser.add_argument("--out", default=None, help="the ledger and summary here (summarize.py)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args(argv)
    budgets = [int(b) for b in args.labels.split(",")]
    todo = arms(args.methods.split(","), budgets, args.seeds)
    done = finished_names(args.overrides) | ledger_names(Path(args.out or HERE) / "runs.jsonl")
    left = [arm for arm in todo if arm_name(*arm) not in done]
    if not left:
        print(f"nothing to run: all {len(todo)} arms asked for are in the ledger or the store "
              "(--seeds and --labels ask for more)")  # fmt: skip
        return 0
    summary = [sys.executable, str(HERE / "summarize.py"), *_summary_options(args)]
    failed = []
    for method, labels, seed in left:
        name = arm_name(method, labels, seed)
        command = [sys.executable, "-m", "ssgan.train", "experiment=methods", f"method={method}",
                   f"data.num_labeled={labels}", f"train.seed={seed}",
                   f"tracking.run_name={name}", "resume=auto", *args.overrides]  # fmt: skip
        print(f"{time.strftime('%H:%M:%S')} {name}: {' '.join(command[1:])}", flush=True)
        if args.dry_run:
            continue
        if subprocess.run(command, check=False).returncode != 0:
            failed.append(name)
            print(f"{name} failed (its run in the store says why); the study goes on", flush=True)
        else:  # into the ledger at once: the session may end before the study does
            subprocess.run(summary, check=False)
    if failed:
        print(f"failed arms: {', '.join(failed)} (run this command again to retry them)")
        return 1
    return 0


def _summary_options(args: argparse.Namespace) -> list[str]:
    """summarize.py's options for the store the overrides name, and the ledger's folder."""
    uri = [o.split("=", 1)[1] for o in args.overrides if o.startswith("tracking.uri=")]
    return [
        *(["--tracking-uri", uri[-1]] if uri else []),
        *(["--out", args.out] if args.out else []),
    ]


if __name__ == "__main__":
    sys.exit(main())
