"""Every method's training loop against its bare step, at the study's scale, in one file.

    python experiments/methods/bench.py [--steps 10] [--rounds 3] [--out PATH] [OVERRIDE ...]

Runs ``python -m ssgan.bench experiment=methods bench.methods=[all] bench.widths=[default]
bench.json=true`` (the study's network, batch and data; each method built in one process
and timed in alternating rounds, see docs/performance.md) and writes ``bench.md`` beside
this file: per method, the full loop's and the bare step's labelled images/s, their ratio
(the goal: 0.95 or more), the augmentation's share of the step, and how many times faster
the input pipeline delivers batches than the step consumes them; the machine and date.
Extra arguments are training or bench overrides (``train.steps_per_loop=4``). Run it on
an otherwise idle machine: two cores are shared by everything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LOOP_GOAL = 0.95  # the full loop within 5 % of the bare step


def bench_command(steps: int, rounds: int, overrides: list[str]) -> list[str]:
    """The benchmark's command line, as a user would type it."""
    return [
        sys.executable, "-m", "ssgan.bench", "experiment=methods", "bench.methods=[all]",
        "bench.widths=[default]", f"bench.steps={steps}", f"bench.rounds={rounds}",
        "bench.json=true", *overrides,
    ]  # fmt: skip


def figures_from(stdout: str) -> dict[str, Any]:
    """The JSON the benchmark printed (after any line before it)."""
    return json.loads(stdout[stdout.index("{") :])


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def bench_table(figures: dict[str, Any]) -> str:
    """A row per method, with the loop goal's verdict."""
    rows = [
        "| method | full loop, images/s | bare step, images/s | loop / bare | goal ≥ 0.95 "
        "| augmentation share of the step | input pipeline / step |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, method in figures["default"].items():
        ratio = method["loop_to_bare_ratio"]
        verdict = "met" if ratio >= LOOP_GOAL else f"missed by {LOOP_GOAL - ratio:.2f}"
        rows.append(
            f"| {name} | {method['full_loop_images_per_sec']:.1f} "
            f"| {method['bare_step_images_per_sec']:.1f} | {ratio:.3f} | {verdict} "
            f"| {_share(method['augmentation_share'])} "
            f"| {method['input_pipeline_to_step_ratio']:.1f}× |"
        )
    return "\n".join(rows)


def results(figures: dict[str, Any], command: list[str], when: dt.datetime, commit: str) -> str:
    machine = figures["machine"]
    vector = f" with {machine['vector_extension'].upper()}" if machine["vector_extension"] else ""
    shown = " ".join(["python", *command[1:]])
    return "\n\n".join([
        "# Methods study: training speed by method",
        f"Written by `python experiments/methods/bench.py` on {when:%Y-%m-%d %H:%M} UTC, "
        f"which ran `{shown}`.",
        f"- machine: {machine['cpu']}{vector}, {machine['cores']} cores, GPUs: "
        f"{', '.join(machine['gpus']) or 'none'}, TensorFlow {machine['tensorflow']}",
        f"- code: commit {commit}",
        f"- each method: {figures['default'][next(iter(figures['default']))]['batch_size']} "
        "labelled images a step, best of the rounds",
        bench_table(figures),
        "Loop / bare: the framework's full loop (input pipeline, multi-step calls, logging to "
        "a SQLite store, checkpoints) against the same compiled step on one batch held in "
        "memory. Augmentation share: the method's own augmentations alone against the bare "
        "step that includes them (— : the method does not augment). Input pipeline / step: "
        "below 1, the step would wait for data. See docs/performance.md.",
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--out", type=Path, default=HERE / "bench.md")
    args, overrides = parser.parse_known_args(argv)
    command = bench_command(args.steps, args.rounds, overrides)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "bench failed",
              file=sys.stderr)  # fmt: skip
        return done.returncode
    head = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(head, cwd=REPO, capture_output=True, text=True).stdout.strip()
    text = results(figures_from(done.stdout), command, dt.datetime.now(dt.UTC), commit or "?")
    args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
