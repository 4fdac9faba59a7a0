"""The label-budget study's summary path: runs in a real MLflow store (logged by hand, as
a sweep would log them, without training) -> table, goals, learning curves, ablation."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from ssgan.config import TrackingConfig
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tracker import create_run
from tests.helpers.repo import REPO_ROOT
from tests.helpers.stores import seeded_sqlite_uri

SUMMARIZE = REPO_ROOT / "experiments" / "label_budget" / "summarize.py"
START = datetime(2026, 1, 1)


def _log_run(client, experiment: str, params: dict, tags: dict, curve, test_accuracy, start):
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id, tags=tags, start_time=int(start.timestamp() * 1000))
    run_id = run.info.run_id
    metrics = [Metric("val/accuracy", v, 0, s) for s, v in curve]
    metrics.append(Metric("best/test_accuracy", test_accuracy, 0, curve[-1][0]))
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    end = start + timedelta(minutes=5)
    client.set_terminated(run_id, "FINISHED", end_time=int(end.timestamp() * 1000))


def _summarize(uri: str, out: Path, *args: str):
    return run_cli_script(SUMMARIZE, "--tracking-uri", uri, "--out", str(out), *args)


def run_cli_script(script: Path, *args: str):
    import subprocess

    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
        cwd=REPO_ROOT,
    )  # fmt: skip


@pytest.mark.e2e
def test_study_summary_gives_table_goals_and_curves(tmp_path: Path) -> None:
    """A sweep parent with 12 children, as ``ssgan.train -m`` leaves them."""
    tracking = TrackingConfig(
        uri=seeded_sqlite_uri(tmp_path / 'mlflow.db'), experiment="label_budget",
        artifact_root=str(tmp_path / "artifacts"),
    )  # fmt: skip
    store = TrackingStore(tracking)
    parent = create_run(
        store, "sweep",
        tags={"ssgan.sweep_kind": "grid",
              "ssgan.swept_params": "train.mode,data.num_labeled,train.seed"},
        params={},
    )  # fmt: skip
    # SSGAN at about half the baseline's error at 1000 labels on every seed; at 100
    # labels seed 2 misses the 0.8 goal and starts below 50 %.
    errors = {
        (1000, "supervised"): [0.05, 0.06, 0.05], (1000, "ssgan"): [0.025, 0.03, 0.02],
        (100, "supervised"): [0.5, 0.5, 0.5], (100, "ssgan"): [0.3, 0.35, 0.45],
    }  # fmt: skip
    for (labels, mode), per_seed in errors.items():
        for seed, error in enumerate(per_seed):
            child = create_run(
                store, f"{mode}-{labels}-{seed}",
                tags={"mlflow.parentRunId": parent.run_id},
                params={"data.num_labeled": labels, "train.mode": mode, "train.seed": seed,
                        "train.epochs": 5, "train.steps_per_epoch": 352},
            )  # fmt: skip
            early = 0.3 if (labels, mode, seed) == (100, "ssgan", 2) else 0.7
            for step, value in ((352, early), (704, 0.8), (1056, 0.85), (1408, 0.9)):
                child.log_metrics({"val/accuracy": value}, step)
            child.log_metrics({"val/accuracy": 1 - error, "best/test_accuracy": 1 - error}, 1760)
            child.finish("FINISHED")
    parent.finish("FINISHED")
    result = _summarize(tracking.uri, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    results = (tmp_path / "out" / "results.md").read_text()
    assert f"Sweep parent run `{parent.run_id}`, 12 runs. The sweep took" in results
    assert "| 1000 | 5.3% ± 0.6 | 2.5% ± 0.5 | 0.47 | 3 |" in results
    assert "≤ 0.6 at 1000 labels on every seed: **met** (seed 0: 0.50, seed 1: 0.50, " \
           "seed 2: 0.40)" in results  # fmt: skip
    assert "≤ 0.8 at 100 labels on every seed: **not met** (seed 0: 0.60, seed 1: 0.70, " \
           "seed 2: 0.90)" in results  # fmt: skip
    assert "after the first 20% of its steps: **not met**" in results
    assert "100 labels seed 2: 30.0%" in results and "1000 labels seed 0: 70.0%" in results
    for figure in ("label_budget.png", "label_budget_curves.png"):
        assert (tmp_path / "out" / figure).stat().st_size > 10_000
    assert (tmp_path / "out" / "report" / "report.md").exists()


@pytest.mark.e2e
def test_ablation_summary_has_one_row_per_change(tmp_path: Path) -> None:
    uri = seeded_sqlite_uri(tmp_path / "mlflow.db")
    client = MlflowClient(uri)
    small = {
        "model.d_size_mult": 32, "model.g_size_mult": 16, "data.batch_size": 64,
        "data.train_size": 20000, "data.val_size": 2000, "train.epochs": 10,
        "train.steps_per_epoch": 200,
    }  # fmt: skip
    changes = {"small": {}, "width": {"model.d_size_mult": 64, "model.g_size_mult": 32},
               "pool": {"data.train_size": 47000}}  # fmt: skip
    for index, (name, change) in enumerate(changes.items()):
        curve = [(200 * (e + 1), 0.1 if name == "small" and e < 7 else 0.9) for e in range(10)]
        tags = {"mlflow.runName": name}
        _log_run(client, "label_budget_ablation", small | change, tags, curve, 0.45 + index / 10,
                 START + timedelta(minutes=index))  # fmt: skip
    result = _summarize(uri, tmp_path / "out", "--ablation")
    assert result.returncode == 0, result.stderr[-2000:]
    table = (tmp_path / "out" / "ablation.md").read_text()
    row = "| the small preset (failing) | 32 / 16 | 64 | 18,000 | 10.0% | 10.0% | 90.0% | 55.0% |"
    assert row in table
    assert "| width → default (d 64, g 32) | 64 / 32 | 64 | 18,000 | 90.0% |" in table
    assert "| pool → default (45,000 images) | 32 / 16 | 64 | 45,000 |" in table
    assert "| batch → default (128) | | | | | | | not run |" in table


@pytest.mark.e2e
def test_summary_of_an_empty_store_is_one_line(tmp_path: Path) -> None:
    result = _summarize(seeded_sqlite_uri(tmp_path / "mlflow.db"), tmp_path / "out")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: no sweep in experiment")
    result = _summarize(seeded_sqlite_uri(tmp_path / "mlflow.db"), tmp_path / "out", "--ablation")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: no finished runs")


@pytest.mark.unit
def test_study_scripts_compose_valid_configs() -> None:
    """Each run the scripts launch composes and validates (no training)."""
    from ssgan.cli import check_overrides
    from ssgan.config_checks import validate_train_config

    for mode in ("ssgan", "supervised"):
        for labels in (100, 1000):
            check_overrides(
                "config",
                ["experiment=label_budget", f"method={mode}", f"data.num_labeled={labels}"],
                validate_train_config,
            )
    small = ["experiment=label_budget_small", "data.num_labeled=1000", "train.seed=1"]
    for change in ([], ["model.d_size_mult=64"], ["data.batch_size=128"],
                   ["data.train_size=47000"]):  # fmt: skip
        check_overrides("config", small + change, validate_train_config)
