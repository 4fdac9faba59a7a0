"""How long the test suite takes here: ``python experiments/test_timing/measure.py``.

Runs ``python -m pytest`` (the whole suite, as CI does) and then
``python -m pytest -m "not slow"``, each timed from start to exit, and writes
``experiments/test_timing/results.md`` with the machine, the date, the commit and the
ten slowest tests of the whole run. Run it on an otherwise idle machine: two cores are
shared by everything, so anything else running stretches both figures.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results.md"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def timed_pytest(*args: str, junit: Path) -> tuple[float, str]:
    """Wall seconds of one pytest run and its closing summary line; stops on failure."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", *args]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        sys.exit(f"pytest {' '.join(args)} failed (exit {done.returncode}): {lines[-1:]}")
    return seconds, re.sub(r"=+", "", lines[-1]).strip()


def slowest(junit: Path, count: int = 10) -> list[tuple[float, str]]:
    cases = ET.parse(junit).getroot().iter("testcase")
    times = [(float(c.get("time", 0)), f"{c.get('classname')}::{c.get('name')}") for c in cases]
    return sorted(times, reverse=True)[:count]


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        full, full_summary = timed_pytest(junit=Path(tmp) / "full.xml")
        top = slowest(Path(tmp) / "full.xml")
        quick, quick_summary = timed_pytest("-m", "not slow", junit=Path(tmp) / "quick.xml")
    rows = "\n".join(f"| {seconds:.1f} | `{name}` |" for seconds, name in top)
    RESULTS.write_text(f"""# Test suite timing

Written by `python experiments/test_timing/measure.py` on {dt.date.today().isoformat()},
commit {commit}, on {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}.

| command | wall time | pytest's summary |
| --- | ---: | --- |
| `python -m pytest` | {minutes(full)} | {full_summary} |
| `python -m pytest -m "not slow"` | {minutes(quick)} | {quick_summary} |

The ten slowest tests of the whole run (seconds, setup and teardown included):

| seconds | test |
| ---: | --- |
{rows}
""")
    print(f"wrote {RESULTS.relative_to(REPO)}: whole suite {minutes(full)}, "
          f"not slow {minutes(quick)}")


if __name__ == "__main__":
    main()
