"""Trials per hour of one search worker against two and four workers with one TensorFlow
thread each, on this machine, side by side in one run; writes results.md beside this file.

Each arm is a whole `python -m ssgan.tune` search on a fresh store (worker start-up,
data loading, training, MLflow and the study included), timed from start to exit. Arms
alternate, ROUNDS times, for each model size; the data cache is made once beforehand.

    python experiments/search_workers/measure.py [ROUNDS] [N_TRIALS]
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ssgan import host
from ssgan.tracking.provenance import git_state

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# Trials long enough that a worker's start-up (TensorFlow import, data load) is a
# realistic share; pruning off, so every trial trains the same number of steps.
SEARCH = ["search=smoke", "search.pruner.name=none", "experiment=smoke", "train.epochs=2",
          "train.sample_grid=false"]  # fmt: skip
SIZES = {
    "smoke widths (g/d 8, 40 steps a trial)": ["train.steps_per_epoch=20"],
    "wider nets (g/d 32, 16 steps a trial)": [
        "model.g_size_mult=32", "model.d_size_mult=32", "train.steps_per_epoch=8",
    ],
}  # fmt: skip
ARMS = {
    "1 worker (TensorFlow's threads)": ["search.workers=1"],
    "2 workers x 1 thread": ["search.workers=2", "search.threads_per_worker=1"],
    "4 workers x 1 thread": ["search.workers=4", "search.threads_per_worker=1"],
}


def run_search(folder: Path, data_root: Path, overrides: list[str]) -> float:
    """Seconds from start to exit of one whole search in ``folder``."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(ROOT)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ssgan.tune", *SEARCH, f"data.root={data_root}", *overrides],
        cwd=folder, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    n_trials = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    with tempfile.TemporaryDirectory(prefix="ssgan-search-workers-") as tmp:
        data_root = Path(tmp) / "data"
        warm = Path(tmp) / "warm"
        warm.mkdir()
        run_search(warm, data_root, ["search.n_trials=1"])  # makes the data cache
        seconds: dict[tuple[str, str], list[float]] = {}
        for size, size_overrides in SIZES.items():
            for _ in range(rounds):
                for arm, arm_overrides in ARMS.items():
                    folder = Path(tmp) / f"arm-{sum(map(len, seconds.values()))}"
                    folder.mkdir()
                    overrides = [f"search.n_trials={n_trials}", *size_overrides, *arm_overrides]
                    took = run_search(folder, data_root, overrides)
                    seconds.setdefault((size, arm), []).append(took)
                    print(f"{size} | {arm}: {took:.0f} s", flush=True)
    write_results(seconds, rounds, n_trials)


def write_results(seconds: dict[tuple[str, str], list[float]], rounds: int, n: int) -> None:
    commit = git_state(HERE).get("mlflow.source.git.commit", "unknown")[:7]
    lines = [
        "# Search workers: trials per hour",
        "",
        f"Written by `python experiments/search_workers/measure.py {rounds} {n}` on "
        f"{dt.date.today().isoformat()}, commit {commit}.",
        "",
        f"Machine: {host.cpu().describe()}, {len(os.sched_getaffinity(0))} cores. "
        f"Each arm: one whole search of {n} trials "
        f"(`{' '.join(SEARCH)}` plus the size's overrides) on a fresh store, start to "
        f"exit, arms alternating, {rounds} round(s), median.",
        "",
        "| model | workers | seconds (each round) | trials/hour | vs 1 worker |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for size in SIZES:
        base = None
        for arm in ARMS:
            runs = seconds[(size, arm)]
            rate = n / statistics.median(runs) * 3600
            base = base or rate
            lines.append(
                f"| {size} | {arm} | {', '.join(f'{s:.0f}' for s in runs)} | {rate:.0f} | "
                f"{rate / base:.2f}x |"
            )
    lines.append("")
    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
