"""Scale-out guarantees: a store many processes open at once, one owner per run, signals,
multi-worker jobs, preemption."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO_ROOT

_OPEN_STORE_AND_RUN = """
import sys, time
from omegaconf import OmegaConf
from ssgan.tracking import client_for, experiment_id
root, me, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = OmegaConf.create({"uri": f"sqlite:///{root}/mlflow.db",
                        "artifact_root": f"{root}/artifacts", "experiment": "ssgan"})
# A barrier: every process has imported its modules before any opens the store.
open(f"{root}/ready-{me}", "w").close()
while len([n for n in __import__("os").listdir(root) if n.startswith("ready-")]) < count:
    time.sleep(0.01)
client = client_for(cfg)
run = client.create_run(experiment_id(client, cfg))
client.set_terminated(run.info.run_id)
"""


@pytest.mark.slow
def test_many_processes_start_on_a_fresh_store_at_once(tmp_path: Path) -> None:
    """Without the store lock this fails nearly every time (two processes creating or
    migrating the same SQLite schema: 'duplicate column name', 'table ... already exists')."""
    processes = 4
    logs = [tmp_path / f"process{i}.log" for i in range(processes)]
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_STORE_AND_RUN, str(tmp_path), str(i), str(processes)],
            cwd=REPO_ROOT,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for i, log in enumerate(logs)
    ]
    for job, log in zip(jobs, logs, strict=True):
        assert job.wait(timeout=180) == 0, log.read_text()
    # Healthy: a new client opens it, one experiment, every run recorded and finished.
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = client.search_experiments()
    assert [e.name for e in experiments if e.name != "Default"] == ["ssgan"]
    runs = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
    assert len(runs) == processes and {r.info.status for r in runs} == {"FINISHED"}
