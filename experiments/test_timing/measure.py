"""How long the test suite takes here: ``python experiments/test_timing/measure.py``.

Runs ``python -m pytest`` (the whole suite, as CI does), timed from start to exit, and
splits the time its tests took (pytest's JUnit report: setup, call and teardown of each)
by tier: the tests marked ``unit``, ``integration`` and ``e2e`` (what ``-m unit`` and
``-m "unit or integration"`` run), and by the ``slow`` marker (what ``-m "not slow"``
leaves out). Writes ``experiments/test_timing/results.md`` with the machine, the date,
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
TIERS = ("unit", "integration", "e2e")  # every test has exactly one (tests/conftest.py)


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


def marked_tests(marker: str) -> set[str]:
    """Node ids of the tests ``-m <marker>`` selects."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", marker,
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


def summed(times: list[tuple[float, str]], names: set[str]) -> tuple[int, float]:
    """How many of ``names`` ran, and their seconds summed."""
    seconds = [s for s, name in times if name in names]
    return len(seconds), sum(seconds)


def groups(tiers: dict[str, set[str]], slow: set[str], ran: set[str]) -> dict[str, set[str]]:
    """The table's rows: each tier, the two tiers a quick run takes, and the slow split."""
    untiered = ran - set().union(*tiers.values())
    if untiered:  # a node id the JUnit report spells otherwise than the collection list
        print(f"warning: {len(untiered)} tests in no tier's list, such as {min(untiered)}",
              file=sys.stderr)  # fmt: skip
    quick = tiers["unit"] | tiers["integration"]
    return {
        "unit tests (what `-m unit` runs)": tiers["unit"],
        "integration tests": tiers["integration"],
        'unit and integration tests (what `-m "unit or integration"` runs)': quick,
        "e2e tests": tiers["e2e"],
        'tests not marked slow (what `-m "not slow"` runs)': ran - slow,
        "tests marked slow": slow,
    }


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    tiers = {tier: marked_tests(tier) for tier in TIERS}
    slow = marked_tests("slow")
    with tempfile.TemporaryDirectory() as tmp:
        wall, summary = timed_pytest(Path(tmp) / "junit.xml")
        times = test_times(Path(tmp) / "junit.xml")
    rows_by_group = []
    for what, names in groups(tiers, slow, {name for _, name in times}).items():
        count, seconds = summed(times, names)
        rows_by_group.append(f"| its {count} {what} | {minutes(seconds)} |")
    split = "\n".join(rows_by_group)
    rows = "\n".join(f"| {seconds:.1f} | `{name}` |" for seconds, name in sorted(times)[::-1][:10])
    RESULTS.write_text(f"""# Test suite timing

Written by `python experiments/test_timing/measure.py` on {dt.date.today().isoformat()},
commit {commit}, on {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}.

| what | time |
| --- | ---: |
| `python -m pytest`, start to exit ({summary}) | {minutes(wall)} |
{split}

The test times are pytest's own (setup, call and teardown of each test), summed; start
to exit adds collection and start-up, which a run of one tier pays too.

The ten slowest tests (seconds):

| seconds | test |
| ---: | --- |
{rows}
""")
    each = ", ".join(f"{tier} {minutes(summed(times, tiers[tier])[1])}" for tier in TIERS)
    print(f"wrote {RESULTS.relative_to(REPO)}: whole suite {minutes(wall)}; tests: {each}")


if __name__ == "__main__":
    main()
