"""glibc's default malloc against the project's setting, side by side in one run.

    python experiments/allocator/compare.py [--pairs 2] [--steps 8] [bench overrides]

Runs ``python -m ssgan.bench bench.widths=[default] bench.json=true`` in fresh processes, in turn
with ``SSGAN_MALLOC=system`` (glibc's defaults) and ``SSGAN_MALLOC=tuned`` (the default,
ssgan/allocator.py), ``--pairs`` times each, and writes
``experiments/allocator/results_<vector extension>.md`` (one file per kind of machine:
``avx512``, ``avx2``) with the machine, the date and every run's figures. The allocator is
set once per process, so the two cannot share one; alternating them spreads the noise of a
shared machine over both. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIGURES = [
    ("bare step img/s", "bare_step_images_per_sec", "{:.1f}"),
    ("full loop img/s", "full_loop_images_per_sec", "{:.1f}"),
    ("step / matmul peak", "step_share_of_peak", "{:.1%}"),
    ("kernel share, bare step", "bare_step_kernel_share", "{:.1%}"),
    ("kernel share, full loop", "full_loop_kernel_share", "{:.1%}"),
]


def bench(choice: str, steps: int, overrides: list[str]) -> dict:
    command = [sys.executable, "-m", "ssgan.bench", "bench.widths=[default]", "bench.json=true",
               f"bench.steps={steps}", "bench.rounds=2", "bench.warmup=3", *overrides]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "SSGAN_MALLOC": choice})  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"the {choice} benchmark failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout[done.stdout.index("{") :])


def row(choice: str, run: int, figures: dict) -> str:
    width = figures["default"]
    cells = [fmt.format(width[key] if key in width else figures[key]) for _, key, fmt in FIGURES]
    peak = figures["matmul_peak_flops_per_sec"] / 1e9
    return f"| {choice} | {run} | " + " | ".join(cells) + f" | {peak:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2, help="runs of each allocator")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the benchmark")
    args = parser.parse_args()
    rows, machine = [], None
    for run in range(1, args.pairs + 1):
        for choice in ("system", "tuned"):
            figures = bench(choice, args.steps, args.overrides)
            machine = figures["machine"]
            rows.append(row(choice, run, figures))
            print(rows[-1], flush=True)
    vector = machine["vector_extension"] or "unknown"
    out = HERE / f"results_{vector}.md"
    header = " | ".join(name for name, _, _ in FIGURES)
    command = " ".join(["python experiments/allocator/compare.py", f"--pairs {args.pairs}",
                        f"--steps {args.steps}", *args.overrides])  # fmt: skip
    out.write_text(f"""# Allocator comparison: {machine["cpu"]}, {vector}

Written by `{command}` on {dt.date.today().isoformat()}: {machine["cpu"]}
({vector}), {machine["cores"]} cores, TensorFlow {machine["tensorflow"]}; default model and
batch, `python -m ssgan.bench bench.widths=[default]`, runs in the order listed.
`system` is glibc's default malloc, `tuned` the project's default (ssgan/allocator.py).

| allocator | run | {header} | matmul peak GFLOP/s |
| --- | ---: |{" ---: |" * len(FIGURES)} ---: |
{chr(10).join(rows)}
""")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
