"""What the synthetic data costs to make, before and after a renderer change, side by side.

Runs the same command, ``python -m ssgan.data.benchmark --root DIR`` (a cold generation of
the default set into an empty folder, then a cached load), from a snapshot of each of two
commits, alternating, ROUNDS times each, and writes cost.md beside this file: the
generation time, images per second and the cache's size on disk, with the machine and date.

    python experiments/synthetic_data/measure_cost.py OLD_COMMIT [NEW_COMMIT] [ROUNDS]

NEW_COMMIT defaults to HEAD. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from ssgan.runtime import start_tensorflow  # noqa: E402

start_tensorflow()  # quietly, the allocator set first, before the import below loads it

from ssgan.benchmarks.machine import describe_machine  # noqa: E402


def snapshot(commit: str, into: Path) -> Path:
    """The tree of ``commit`` (with its own renderer) unpacked under ``into``."""
    folder = into / commit
    folder.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def generate_once(tree: Path, data_root: Path) -> tuple[float, float, int]:
    """Seconds and images/s of one cold generation, and the cache's bytes on disk."""
    result = subprocess.run(
        [sys.executable, "-m", "ssgan.data.benchmark", "--steps", "20", "--root", str(data_root)],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"(\d+) images in ([\d.]+) s = (\d+) images/s", result.stdout)
    if found is None:
        raise SystemExit(f"unexpected benchmark output from {tree}:\n{result.stdout}")
    size = sum(p.stat().st_size for p in (data_root / "synthetic").glob("*.npz"))
    return float(found.group(2)), float(found.group(3)), size


def main() -> None:
    old = sys.argv[1]
    new = sys.argv[2] if len(sys.argv) > 2 else "HEAD"
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    names = {ref: subprocess.check_output(["git", "rev-parse", "--short", ref], cwd=ROOT,
                                          text=True).strip() for ref in (old, new)}  # fmt: skip
    times: dict[str, list[float]] = {old: [], new: []}
    rates: dict[str, list[float]] = {old: [], new: []}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="ssgan-data-cost-") as tmp:
        trees = {ref: snapshot(names[ref], Path(tmp)) for ref in (old, new)}
        for round_index in range(rounds):
            order = (old, new) if round_index % 2 == 0 else (new, old)
            for ref in order:
                data_root = Path(tmp) / f"data-{round_index}-{names[ref]}"
                seconds, rate, size = generate_once(trees[ref], data_root)
                times[ref].append(seconds)
                rates[ref].append(rate)
                sizes[ref] = size
                print(f"{names[ref]}: {seconds:.1f} s, {rate:.0f} images/s, {size / 1e6:.1f} MB")
    write_results(names, times, rates, sizes, old, new)


def write_results(
    names: dict[str, str],
    times: dict[str, list[float]],
    rates: dict[str, list[float]],
    sizes: dict[str, int],
    old: str,
    new: str,
) -> None:
    machine = describe_machine()
    lines = [
        "# Synthetic data: cost to generate, before and after",
        "",
        f"- machine: {machine['cpu']} ({machine['vector_extension'] or 'no AVX'}), "
        f"{machine['cores']} cores",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- command: `python experiments/synthetic_data/measure_cost.py {old} {new} "
        f"{len(times[old])}` (each arm: `python -m ssgan.data.benchmark --root DIR` from a "
        "snapshot of the commit, default sizes: 50,000 train + 10,000 test images, one worker "
        "per core; arms alternate)",
        "",
        "| commit | generation (median) | images/s (median) | runs | cache on disk |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for ref in (old, new):
        lines.append(
            f"| {names[ref]} | {statistics.median(times[ref]):.1f} s | "
            f"{statistics.median(rates[ref]):.0f} | {len(times[ref])} | {sizes[ref] / 1e6:.1f} MB |"
        )
    ratio = statistics.median(times[new]) / statistics.median(times[old])
    lines += ["", f"Generation takes {ratio:.1f}x as long at {names[new]} as at {names[old]}.", ""]
    (HERE / "cost.md").write_text("\n".join(lines))
    print(f"wrote {HERE / 'cost.md'}")


if __name__ == "__main__":
    main()
