"""What recording MLflow's system metrics costs a training step: `python -m ssgan.bench`
at smoke widths, run alternately with tracking.system_metrics=false and =true
(MLflow's default 10 s sampling), PAIRS times each; writes results.md beside this file.

    python experiments/system_metrics/measure.py [PAIRS]
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from ssgan import host
from ssgan.tracking.provenance import git_state

HERE = Path(__file__).resolve().parent
BENCH = [sys.executable, "-m", "ssgan.bench", "bench.widths=[smoke]", "bench.json=true"]


def full_loop_rate(system_metrics: bool) -> float:
    out = subprocess.run(
        [*BENCH, f"tracking.system_metrics={str(system_metrics).lower()}"],
        capture_output=True, text=True, check=True, cwd=HERE.parent.parent,
    )  # fmt: skip
    results = json.loads(out.stdout[out.stdout.index("{") :])
    return float(results["smoke"]["full_loop_images_per_sec"])


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(pairs):
        for on in (False, True):
            rates[on].append(full_loop_rate(on))
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    commit = git_state(HERE).get("mlflow.source.git.commit", "unknown")[:7]
    lines = [
        "# System metrics: cost per training step",
        "",
        f"Written by `python experiments/system_metrics/measure.py` on "
        f"{dt.date.today().isoformat()}, commit {commit}.",
        "",
        f"Machine: {host.cpu().describe()}, {len(os.sched_getaffinity(0))} cores. "
        "`python -m ssgan.bench bench.widths=[smoke]`, "
        f"full loop (logging to SQLite), {pairs} alternating pairs, median.",
        "",
        "| system metrics | full loop images/s (each run) | median |",
        "| --- | --- | ---: |",
        f"| off | {', '.join(f'{r:.0f}' for r in rates[False])} | {off:.0f} |",
        f"| on (10 s sampling) | {', '.join(f'{r:.0f}' for r in rates[True])} | {on:.0f} |",
        "",
        f"On / off: {on / off:.3f} (below 1 = slower with system metrics).",
        "",
    ]
    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
