"""How long the test suite takes here: ``python experiments/test_timing/measure.py``.

Times, each from start to exit, the commands README.md gives:

* the whole suite, with the command CI runs (the last line of ``.ci/run``:
  ``python -m pytest -n auto ...``, pytest-xdist's workers, one per core), ``--repeat N``
  times in a row (default 1); each run's time and outcome are recorded, and on a failure
  every failed test is printed with its reason (from the run's JUnit report);
* the unit tier, ``python -m pytest -m unit`` (serial: workers would cost more to start
  than its tests take);
* the unit and integration tiers, ``python -m pytest -m "unit or integration"``, both
  serial and with ``-n auto``.

As an extra breakdown it sums the first whole run's per-test times (pytest's JUnit
report: setup, call and teardown of each) by tier and by the ``slow`` marker. Under
parallel workers those sums are CPU-side work, not waiting time: the table's commands
are what a contributor waits for. Writes ``experiments/test_timing/results.md`` with
the machine, the date, the commit and the ten slowest tests; exits 1 if any run failed.
Run it on an otherwise idle machine: two cores are shared by everything, so anything
else running stretches every figure.

Options:

``--repeat N``
    run the whole suite N times consecutively (e.g. ``--repeat 3``: three runs with no
    failure is the bar).
``--select EXPR``
    only to check this script quickly: add ``-m EXPR`` to the whole-suite command and
    restrict each tier to it as well (``-m "(unit) and (EXPR)"``), and write the table to
    ``--out`` instead of ``results.md`` (e.g. ``--select unit --out /tmp/timing.md``).
``--out PATH``
    where the table goes (default ``experiments/test_timing/results.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ssgan import host

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results.md"
CI_SCRIPT = REPO / ".ci" / "run"
TIERS = ("unit", "integration", "e2e")  # every test has exactly one (tests/conftest.py)
PARALLEL = ["-n", "auto"]  # pytest-xdist: one worker per core


def ci_command() -> list[str]:
    """CI's whole-suite command (the last line of ``.ci/run``), as arguments after
    ``python -m pytest``; this script times exactly what CI runs."""
    last = [line for line in CI_SCRIPT.read_text().splitlines() if line.strip()][-1]
    words = shlex.split(last)
    if words[:3] != ["python", "-m", "pytest"]:
        sys.exit(f"{CI_SCRIPT}: the last line is not a `python -m pytest` command: {last}")
    return words[3:]


@dataclass
class Run:
    """One timed pytest command."""

    args: list[str]
    seconds: float
    returncode: int
    summary: str  # pytest's closing line, "=" stripped
    failed: list[tuple[str, str]]

    @property
    def shown(self) -> str:
        return shlex.join(["python", "-m", "pytest", *self.args])

    @property
    def outcome(self) -> str:
        if self.returncode == 0:
            return self.summary
        return f"FAILED (exit {self.returncode}): {self.summary}"


def timed_pytest(args: list[str], junit: Path) -> Run:
    """Run ``python -m pytest args`` from start to exit; on a failure, print every failed
    test with its reason (from the JUnit report)."""
    command = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider",
               f"--junitxml={junit}"]  # fmt: skip
    print(f"running {shlex.join(['python', '-m', 'pytest', *args])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = re.sub(r"=+", "", lines[-1]).strip() if lines else done.stderr.strip()[-200:]
    run = Run(args, seconds, done.returncode, summary, [])
    if done.returncode != 0:
        run.failed = failures(junit)
        for name, reason in run.failed:
            print(f"FAILED {name}: {reason}", file=sys.stderr)
        print(f"{run.shown} failed (exit {done.returncode}): {summary}", file=sys.stderr)
    print(f"  {minutes(seconds)}: {run.outcome}", file=sys.stderr, flush=True)
    return run


def node_id(case: ET.Element) -> str:
    """A JUnit test case's pytest node id, without the ``@group`` that ``--dist
    loadgroup`` would append to the tests of an ``xdist_group``."""
    module = case.get("classname", "").replace(".", "/") + ".py"
    return re.sub(r"@\w+$", "", f"{module}::{case.get('name')}")


def failures(junit: Path) -> list[tuple[str, str]]:
    """(node id, first line of the reason) of every failed or erroring test in a JUnit
    report; none when pytest died before writing one."""
    if not junit.exists():
        return []
    found = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for problem in (*case.iter("failure"), *case.iter("error")):
            text = (problem.get("message") or problem.text or "").strip()
            found.append((node_id(case), text.splitlines()[0] if text else "?"))
    return found


def marked_tests(marker: str) -> set[str]:
    """Node ids of the tests ``-m <marker>`` selects."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", marker,
               "--collect-only", "-q"]  # fmt: skip
    listed = subprocess.run(command, cwd=REPO, capture_output=True, text=True).stdout
    return {line.strip() for line in listed.splitlines() if "::" in line}


def test_times(junit: Path) -> list[tuple[float, str]]:
    """(seconds, node id) of every test in a JUnit report."""
    if not junit.exists():
        return []
    times = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        times.append((float(case.get("time", 0)), node_id(case)))
    return times


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def summed(times: list[tuple[float, str]], names: set[str]) -> tuple[int, float]:
    """How many of ``names`` ran, and their seconds summed."""
    seconds = [s for s, name in times if name in names]
    return len(seconds), sum(seconds)


def groups(tiers: dict[str, set[str]], slow: set[str], ran: set[str]) -> dict[str, set[str]]:
    """The breakdown's rows: each tier, the two tiers a quick run takes, and the slow split."""
    untiered = ran - set().union(*tiers.values())
    if untiered:  # a node id the JUnit report spells otherwise than the collection list
        print(f"warning: {len(untiered)} tests in no tier's list, such as {min(untiered)}",
              file=sys.stderr)  # fmt: skip
    quick = tiers["unit"] | tiers["integration"]
    return {
        "unit tests": tiers["unit"],
        "integration tests": tiers["integration"],
        "unit and integration tests": quick,
        "e2e tests": tiers["e2e"],
        "tests not marked slow": ran - slow,
        "tests marked slow": slow,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the whole suite this many times in a row")  # fmt: skip
    parser.add_argument("--select", default=None,
                        help="only to check this script: -m EXPR on every run")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the table goes")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.select and args.out.resolve() == RESULTS:
        parser.error("--select is for checking this script: give --out, not results.md")

    def tier(expr: str) -> list[str]:
        return ["-m", f"({expr}) and ({args.select})" if args.select else expr]

    whole = ci_command() + (["-m", args.select] if args.select else [])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    tiers = {name: marked_tests(name) for name in TIERS}
    slow = marked_tests("slow")
    with tempfile.TemporaryDirectory() as tmp:
        suite = [timed_pytest(whole, Path(tmp) / f"whole{i}.xml") for i in range(args.repeat)]
        times = test_times(Path(tmp) / "whole0.xml")
        quick = [
            timed_pytest(tier("unit"), Path(tmp) / "unit.xml"),
            timed_pytest(tier("unit or integration"), Path(tmp) / "quick.xml"),
            timed_pytest(PARALLEL + tier("unit or integration"), Path(tmp) / "quick-n.xml"),
        ]
    ok = all(run.returncode == 0 for run in (*suite, *quick))

    commands = [
        f"| whole suite, run {i + 1} of {len(suite)}: `{run.shown}` "
        f"| {minutes(run.seconds)} | {run.outcome} |"
        for i, run in enumerate(suite)
    ]
    commands += [f"| `{run.shown}` | {minutes(run.seconds)} | {run.outcome} |" for run in quick]
    failed = [f"- run {i + 1}: `{name}`: {reason}"
              for i, run in enumerate(suite) for name, reason in run.failed]  # fmt: skip
    failed += [f"- `{run.shown}`: `{name}`: {reason}"
               for run in quick for name, reason in run.failed]  # fmt: skip
    failed_block = "\nFailed tests:\n\n" + "\n".join(failed) + "\n" if failed else ""
    breakdown = []
    for what, names in groups(tiers, slow, {name for _, name in times}).items():
        count, seconds = summed(times, names)
        breakdown.append(f"| its {count} {what} | {minutes(seconds)} |")
    rows = "\n".join(f"| {seconds:.1f} | `{name}` |" for seconds, name in sorted(times)[::-1][:10])
    command_rows, breakdown_rows = "\n".join(commands), "\n".join(breakdown)
    machine = host.cpu().describe()
    how = "measure.py" + (f" --repeat {args.repeat}" if args.repeat > 1 else "")
    if args.select:
        how += f" --select {shlex.quote(args.select)}"
    args.out.write_text(f"""# Test suite timing

Written by `python experiments/test_timing/{how}` on {dt.date.today().isoformat()},
commit {commit}, on {machine}, {os.cpu_count()} cores, Python {platform.python_version()}.

Each command from start to exit (collection and worker start-up included):

| command | time | outcome |
| --- | ---: | --- |
{command_rows}
{failed_block}
Summed per test over the first whole-suite run (pytest's own setup, call and teardown
of each test; with parallel workers these sums add up what every worker did, so they
exceed the time waited):

| what | summed |
| --- | ---: |
{breakdown_rows}

The ten slowest tests of that run (seconds):

| seconds | test |
| ---: | --- |
{rows}
""")
    each = ", ".join(
        f"{minutes(run.seconds)} ({'passed' if run.returncode == 0 else 'FAILED'})" for run in suite
    )
    tiers_timed = ", ".join(f"{shlex.join(run.args)} {minutes(run.seconds)}" for run in quick)
    print(f"wrote {args.out}: whole suite {each}; {tiers_timed}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
