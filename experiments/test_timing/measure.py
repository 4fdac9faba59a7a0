"""How long the test suite takes here: ``python experiments/test_timing/measure.py``.

Runs ``python -m pytest`` (the whole suite, as CI does), timed from start to exit, and
splits the time its tests took (pytest's JUnit report: setup, call and teardown of each)
into the tests marked ``slow`` and the rest, which is what ``python -m pytest -m "not
slow"`` runs. Writes ``experiments/test_timing/results.md`` with the machine, the date,
the commit and the ten slowest tests. Run it on an otherwise idle machine: two cores are
shared by everything, so anything else running stretches every figure.
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


def timed_pytest(junit: Path) -> tuple[float, str]:
    """Wall seconds of the whole suite and pytest's closing line; on a failure, prints
    every failed test with its reason (from the JUnit report) and stops."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        for name, reason in failures(junit):
            print(f"FAILED {name}: {reason}", file=sys.stderr)
        sys.exit(f"python -m pytest failed (exit {done.returncode}): {lines[-1:]}")
    return seconds, re.sub(r"=+", "", lines[-1]).strip()


def failures(junit: Path) -> list[tuple[str, str]]:
    """(node id, first line of the reason) of every failed or erroring test in a JUnit
    report; none when pytest died before writing one."""
    if not junit.exists():
        return []
    found = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for problem in (*case.iter("failure"), *case.iter("error")):
            text = (problem.get("message") or problem.text or "").strip()
            module = case.get("classname", "").replace(".", "/") + ".py"
            found.append((f"{module}::{case.get('name')}", text.splitlines()[0] if text else "?"))
    return found


def slow_tests() -> set[str]:
    """Node ids of the tests marked ``slow``."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "slow",
               "--collect-only", "-q"]  # fmt: skip
    listed = subprocess.run(command, cwd=REPO, capture_output=True, text=True).stdout
    return {line.strip() for line in listed.splitlines() if "::" in line}


def test_times(junit: Path) -> list[tuple[float, str]]:
    """(seconds, node id) of every test in a JUnit report."""
    times = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/") + ".py"
        times.append((float(case.get("time", 0)), f"{module}::{case.get('name')}"))
    return times


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    slow = slow_tests()
    with tempfile.TemporaryDirectory() as tmp:
        wall, summary = timed_pytest(Path(tmp) / "junit.xml")
        times = test_times(Path(tmp) / "junit.xml")
    marked = [seconds for seconds, name in times if name in slow]
    rest = [seconds for seconds, name in times if name not in slow]
    rows = "\n".join(f"| {seconds:.1f} | `{name}` |" for seconds, name in sorted(times)[::-1][:10])
    RESULTS.write_text(f"""# Test suite timing

Written by `python experiments/test_timing/measure.py` on {dt.date.today().isoformat()},
commit {commit}, on {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}.

| what | time |
| --- | ---: |
| `python -m pytest`, start to exit ({summary}) | {minutes(wall)} |
| its {len(rest)} tests not marked slow (what `-m "not slow"` runs) | {minutes(sum(rest))} |
| its {len(marked)} tests marked slow | {minutes(sum(marked))} |

The test times are pytest's own (setup, call and teardown of each test); start to exit
adds collection and start-up.

The ten slowest tests (seconds):

| seconds | test |
| ---: | --- |
{rows}
""")
    print(f"wrote {RESULTS.relative_to(REPO)}: whole suite {minutes(wall)}, "
          f"not slow {minutes(sum(rest))}, slow {minutes(sum(marked))}")


if __name__ == "__main__":
    main()
