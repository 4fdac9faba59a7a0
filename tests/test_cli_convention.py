"""One command-line convention: report, export and bench are Hydra apps like train
(``key=value``, ``--help``, ``--cfg job``); their old flags are refused in one line naming
the new form; every app's ``--help`` names the program as it was invoked. (Each command's
work, and its ``tracking.uri=…``, are tested with the command: test_report.py,
test_export.py, test_bench.py.)"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from ssgan.cli import compose_config
from ssgan.hydra_help import invocation

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parent.parent
RUN_ID = "3f9c0d6e4b7a4c21a0d3e8b5f1c2a9d7"
HYDRA_APPS = ("train", "tune", "promote", "data_stats", "report", "export", "bench")


def run_main(monkeypatch: pytest.MonkeyPatch, app: str, argv0: str, *args: str) -> int:
    """``ssgan.<app>``'s ``main()`` in this process with ``sys.argv`` = argv0 + args; its
    exit status."""
    main = importlib.import_module(f"ssgan.{app}").main
    monkeypatch.setattr(sys, "argv", [argv0, *args])
    try:
        main()
    except SystemExit as stopped:
        return stopped.code if isinstance(stopped.code, int) else 1
    return 0


@pytest.mark.parametrize(
    ("app", "args", "says"),
    [
        ("report", [RUN_ID, "--tracking-uri", "sqlite:///x.db"],
         "--tracking-uri is now tracking.uri=<uri>"),
        ("report", [RUN_ID, "--out", "here"], "--out is now output=<folder>"),
        ("report", [RUN_ID, "--metric=val/acc"], "--metric is now metrics=[<key>,...]"),
        ("report", [RUN_ID], f"{RUN_ID} is now parent_run_id={RUN_ID}"),
        ("export", [RUN_ID, "--output", "exported"], "--output is now output=<folder>"),
        ("export", [RUN_ID, "--checkpoint", "last"], "--checkpoint is now checkpoint=best|last"),
        ("export", [RUN_ID], f"{RUN_ID} is now run_id={RUN_ID}"),
        ("bench", ["train", "--steps", "3"], "--steps is now bench.steps=<n>"),
        ("bench", ["serve", "--json"], "--json is now bench.json=true"),
        ("bench", ["train", "--methods", "all"],
         "--methods is now bench.methods=[supervised,fixmatch] (or [all])"),
        ("bench", ["serve"], "serve is now bench=serve"),
        ("bench", ["--verbose"],
         "--verbose is not an option of python -m ssgan.bench: use key=value"),
    ],
)  # fmt: skip
def test_an_old_flag_is_one_line_naming_the_new_form(
    app: str, args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_main(monkeypatch, app, f"{REPO}/ssgan/{app}.py", *args) == 2
    out, err = capsys.readouterr()
    assert err == f"error: {says} (python -m ssgan.{app} --help lists every key)\n"
    assert out == "" and list(tmp_path.iterdir()) == []  # no outputs/, no store, nothing


@pytest.mark.parametrize("app", HYDRA_APPS)
def test_every_apps_help_names_the_program_as_invoked(
    app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"train": "config"}.get(app, app)
    script = "ssgan-" + app.replace("_", "-")
    for argv0, named in ((f"/venv/bin/{script}", script),
                         (f"{REPO}/ssgan/{app}.py", f"python -m ssgan.{app}")):  # fmt: skip
        monkeypatch.setattr(sys, "argv", [argv0])
        assert compose_config(config, [], with_hydra=True).hydra.help.app_name == named


@pytest.mark.parametrize(
    ("app", "argv0", "starts"),
    [
        ("report", "/venv/bin/ssgan-report", "ssgan-report "),
        ("export", f"{REPO}/ssgan/export.py", "python -m ssgan.export "),
        ("bench", "/venv/bin/ssgan-bench", "ssgan-bench "),
    ],
)
def test_help_prints_the_program_as_invoked(
    app: str, argv0: str, starts: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # In process: these apps leave logging alone (train's --help would configure it). One
    # spelling each (Hydra renders a help in about a second); the test above checks both
    # spellings of every app's name.
    monkeypatch.chdir(tmp_path)
    assert run_main(monkeypatch, app, argv0, "--help") == 0
    assert capsys.readouterr().out.startswith(starts)
    assert list(tmp_path.iterdir()) == []


def test_the_program_name_follows_argv0(monkeypatch: pytest.MonkeyPatch) -> None:
    for argv0, named in (
        ("/home/u/.venv/bin/ssgan-data-stats", "ssgan-data-stats"),
        ("/repo/ssgan/data_stats.py", "python -m ssgan.data_stats"),
        ("-c", "python -m ssgan.data_stats"),
        ("", "python -m ssgan.data_stats"),
    ):
        monkeypatch.setattr(sys, "argv", [argv0])
        assert invocation("data_stats") == named


@pytest.mark.parametrize(
    ("app", "args", "shows", "hides"),
    [
        ("report", [f"parent_run_id={RUN_ID}", "tracking.uri=sqlite:///elsewhere.db"],
         [f"parent_run_id: {RUN_ID}", "uri: sqlite:///elsewhere.db", "- best/test_accuracy"], []),
        ("export", [], ["run_id: ???", "output: ???", "checkpoint: best"], []),
        ("bench", ["bench=serve", "tracking.uri=sqlite:///elsewhere.db", "method=fixmatch"],
         ["name: serve", "requests: 200", "uri: sqlite:///elsewhere.db", "threshold: 0.95"],
         ["steps:", "widths:"]),
        ("bench", [], ["name: train", "steps: 40", "- smoke", "z_size: 100"], ["requests:"]),
        # The first listed method's config, so a key the listed methods share composes.
        ("bench", ["bench.methods=[fixmatch,mean_teacher]", "method.translate=2"],
         ["name: fixmatch", "translate: 2", "- mean_teacher"], []),
    ],
)  # fmt: skip
def test_cfg_job_prints_the_composed_config(
    app: str,
    args: list[str],
    shows: list[str],
    hides: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_main(monkeypatch, app, f"{REPO}/ssgan/{app}.py", *args, "--cfg", "job") == 0
    out = capsys.readouterr().out
    assert all(line in out for line in shows), out
    assert not any(line in out for line in hides), out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("app", "args", "says"),
    [
        ("export", [f"run_id={RUN_ID}", "output=x", "checkpoint=worst"],
         "checkpoint=worst is not a valid choice: allowed best, last"),
        ("export", ["output=x"], "run_id is required: add run_id=<32-hex run id>"),
        ("report", [], "parent_run_id is required: add parent_run_id="),
        ("report", [f"parent_run_id={RUN_ID}", "metrics=[]"],
         "metrics=[]: name at least one metric"),
        ("report", [f"parent_run_id={RUN_ID}", "tracking.uri=file:///tmp/mlruns"],
         "tracking.uri=file:///tmp/mlruns is a plain-file store"),
        ("bench", ["bench=serve", "bench.steps=3"],
         "override 'bench.steps=3': unknown key 'bench.steps'"),
        ("bench", ["bench.rounds=0"], "bench.rounds=0 is too small: allowed 1 or more"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_before_any_work(
    app: str, args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_main(monkeypatch, app, f"{REPO}/ssgan/{app}.py", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
