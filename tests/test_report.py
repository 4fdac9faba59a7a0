"""The sweep report on runs made without the training loop: known numbers, known table."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from ssgan import report as report_command
from ssgan.config import TrackingConfig
from ssgan.errors import UserError
from ssgan.sweeps import report
from ssgan.sweeps.grid import finish_grid
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tracker import RunTracker, create_run

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
# (mode, labels) -> test accuracy of seed 0 and seed 1
ACCURACY = {
    ("supervised", 100): (0.30, 0.40),
    ("ssgan", 100): (0.50, 0.60),
    ("supervised", 1000): (0.80, 0.90),
    ("ssgan", 1000): (0.85, 0.95),
}


@pytest.fixture
def grid_sweep(tmp_path: Path) -> tuple:
    tracking, parent = _sweep_with_its_runs(tmp_path)
    parent.finish("FINISHED")
    return tracking, parent.run_id


def _sweep_with_its_runs(tmp_path: Path) -> tuple[TrackingStore, RunTracker]:
    """A grid sweep's parent run, still RUNNING, and its finished and failed jobs."""
    tracking = TrackingStore(
        TrackingConfig(
            uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
            artifact_root=str(tmp_path / "mlruns" / "artifacts"),
            experiment="label_budget",
        )
    )
    parent = create_run(
        tracking,
        "sweep-mode,num_labeled,seed",
        tags={
            "ssgan.sweep_kind": "grid",
            "ssgan.command": "python -m ssgan.train -m …",
            "ssgan.swept_params": "train.mode,data.num_labeled,train.seed",
        },
        params={"sweep.train.mode": "ssgan,supervised"},
    )
    for (mode, labels), accuracies in ACCURACY.items():
        for seed, acc in enumerate(accuracies):
            child = create_run(
                tracking,
                f"{mode}-{labels}-{seed}",
                tags={"mlflow.parentRunId": parent.run_id},
                params={"train.mode": mode, "data.num_labeled": labels, "train.seed": seed},
            )
            child.log_metrics({"best/test_accuracy": acc, "best/val_accuracy": acc - 0.01}, 10)
            child.finish("FINISHED")
    failed = create_run(
        tracking,
        "failed",
        tags={"mlflow.parentRunId": parent.run_id},
        params={"train.mode": "ssgan", "data.num_labeled": 100, "train.seed": 2},
    )
    failed.finish("FAILED", error="NonFiniteLossError: diverged")
    return tracking, parent


def test_the_report_a_grid_sweep_logs_as_it_ends_is_complete(tmp_path: Path) -> None:
    """Issue 33 item 3: the report logged when a sweep ended said "Partial report: the
    sweep is still running" (it is logged before the parent run is ended). Read back from
    the parent run: partial while the sweep runs, complete once it has ended."""
    tracking, parent = _sweep_with_its_runs(tmp_path)
    client = MlflowClient(tracking_uri=tracking.uri)

    def logged(where: str) -> str:
        (tmp_path / where).mkdir()
        path = client.download_artifacts(parent.run_id, "report/report.md", str(tmp_path / where))
        return Path(path).read_text()

    report.write_report(tracking, parent.run_id, out_dir=None)  # during the sweep
    assert "**Partial report**: the sweep is still running (9 finished)" in logged("during")
    finish_grid(parent, "FINISHED")
    assert client.get_run(parent.run_id).info.status == "FINISHED"
    text = logged("ended")
    assert "Partial report" not in text
    assert "- status: FINISHED: the sweep has ended; this report is complete" in text
    assert "| ssgan | 1000 |" in text


def test_report_groups_by_swept_settings_with_seeds_pooled(grid_sweep, tmp_path: Path) -> None:
    tracking, parent_id = grid_sweep
    path = report.write_report(tracking, parent_id, tmp_path / "out", ["best/test_accuracy"])
    text = Path(path).read_text()
    assert "| train.mode | data.num_labeled | best/test_accuracy | runs | pruned | failed |" in text
    std = float(np.std([0.85, 0.95], ddof=1))
    assert f"| ssgan | 1000 | 0.9000 ± {std:.4f} | 2 | 0 | 0 |" in text
    # The failed run counts in its group but not in the mean.
    assert f"| ssgan | 100 | 0.5500 ± {std:.4f} | 3 | 0 | 1 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "±" in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| ssgan",
        "| supervised",
        "| ssgan",
        "| supervised",
    ]
    assert "pooled: train.seed" in text
    plots = sorted(p.name for p in (tmp_path / "out" / "plots").iterdir())
    assert plots == [
        "best_test_accuracy_vs_data.num_labeled.png",
        "best_test_accuracy_vs_train.mode.png",
    ]
    # Logged on the parent run too.
    logged = MlflowClient(tracking_uri=tracking.uri).list_artifacts(parent_id, "report")
    assert "report/report.md" in [a.path for a in logged]


def test_report_refuses_a_metric_no_run_logged(grid_sweep, tmp_path: Path) -> None:
    tracking, parent_id = grid_sweep
    with pytest.raises(UserError, match="metrics: val/acc: no run of this sweep logged"):
        report.write_report(tracking, parent_id, tmp_path / "out", ["val/acc"])
    assert not (tmp_path / "out").exists()


def test_report_command_prints_one_line_for_a_bad_run_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ssgan.report", "parent_run_id=not-a-run"])
    with pytest.raises(SystemExit) as done:
        report_command.main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: run_id='not-a-run' is not an MLflow run id") and err.count("\n") == 1
    )
    assert not (tmp_path / "reports").exists()


def test_report_command_reads_the_store_tracking_uri_names(
    grid_sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``tracking.uri=…`` means to the report what it means to ``ssgan.train``; the default
    folder is reports/<id>/ in the launch folder, where Hydra writes nothing of its own."""
    tracking, parent_id = grid_sweep
    launch = tmp_path / "launch"
    launch.mkdir()
    monkeypatch.chdir(launch)
    argv = ["ssgan-report", f"parent_run_id={parent_id}", f"tracking.uri={tracking.uri}",
            "metrics=[best/test_accuracy]"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    report_command.main()
    written = launch / "reports" / parent_id / "report.md"
    assert capsys.readouterr().out == f"report: {written.relative_to(launch)}\n"
    text = written.read_text()
    assert "| train.mode | data.num_labeled | best/test_accuracy | runs | pruned | failed |" in text
    assert [p.name for p in launch.iterdir()] == ["reports"]  # no outputs/, no mlflow.db


def test_label_budget_summary_uses_the_report(
    grid_sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracking, parent_id = grid_sweep
    monkeypatch.setattr(
        sys,
        "argv",
        # --out: every table and figure under tmp_path (the defaults are the committed
        # ones under docs/ and experiments/, which a test must not overwrite).
        ["summarize.py", "--tracking-uri", tracking.uri, "--out", str(tmp_path)],
    )
    runpy.run_path(str(REPO / "experiments" / "label_budget" / "summarize.py"), run_name="__main__")
    results = (tmp_path / "results.md").read_text()
    assert f"Sweep parent run `{parent_id}`, 9 runs." in results
    # 100 labels: supervised error 65% ± 7.1, SSGAN 45% ± 7.1, ratio 0.69.
    assert "| 100 | 65.0% ± 7.1 | 45.0% ± 7.1 | 0.69 | 2 |" in results
    assert "| 1000 | 15.0% ± 7.1 | 10.0% ± 7.1 | 0.67 | 2 |" in results
    assert (tmp_path / "label_budget.png").stat().st_size > 0
    assert (tmp_path / "label_budget_curves.png").stat().st_size > 0
    assert (tmp_path / "report" / "report.md").exists()


def test_search_report_without_its_study_still_writes_the_table(grid_sweep, tmp_path: Path) -> None:
    """A search reported where its optuna.db is not (another machine): table, no crash."""
    tracking, parent_id = grid_sweep
    missing = tmp_path / "elsewhere" / "optuna.db"
    MlflowClient(tracking_uri=tracking.uri).set_tag(parent_id, "ssgan.sweep_kind", "search")
    client = MlflowClient(tracking_uri=tracking.uri)
    client.set_tag(parent_id, "ssgan.optuna_study", "gone")
    client.set_tag(parent_id, "ssgan.optuna_storage", f"sqlite:///{missing}")
    text = Path(report.write_report(tracking, parent_id, tmp_path / "out")).read_text()
    assert "storage sqlite:///" in text and "is not here" in text
    assert not missing.parent.exists()


def test_search_report_with_a_damaged_study_file_notes_it(grid_sweep, tmp_path: Path) -> None:
    """A truncated optuna.db used to end the report in sqlite's traceback."""
    tracking, parent_id = grid_sweep
    damaged = tmp_path / "optuna.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x07" * 984)  # `truncate -s 1000`-like
    client = MlflowClient(tracking_uri=tracking.uri)
    client.set_tag(parent_id, "ssgan.sweep_kind", "search")
    client.set_tag(parent_id, "ssgan.optuna_study", "s")
    client.set_tag(parent_id, "ssgan.optuna_storage", f"sqlite:///{damaged}")
    text = Path(report.write_report(tracking, parent_id, tmp_path / "out")).read_text()
    assert f"search storage {damaged} is not a readable SQLite database" in text
    assert damaged.stat().st_size == 1000  # read only


def test_report_on_a_sweep_whose_children_were_deleted(grid_sweep, tmp_path: Path) -> None:
    """Deleted children are left out and counted; all deleted is one line saying so (it used
    to say the run has no child runs and to give the parent id that was given)."""
    tracking, parent_id = grid_sweep
    client = MlflowClient(tracking_uri=tracking.uri)
    children = report.child_runs(tracking, parent_id)
    client.delete_run(children[0].info.run_id)
    text = Path(report.write_report(tracking, parent_id, tmp_path / "out")).read_text()
    assert f"- runs: {len(children) - 1} (" in text and "; 1 deleted child runs left out" in text
    for child in children[1:]:
        client.delete_run(child.info.run_id)
    with pytest.raises(UserError, match=f"all {len(children)} of its child runs are deleted"):
        report.write_report(tracking, parent_id, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
