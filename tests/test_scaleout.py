"""Scale-out guarantees: a store many processes open at once, one owner per run, signals,
multi-worker jobs, preemption."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import sqlalchemy.orm
import tensorflow as tf
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from mlflow.tracking import MlflowClient

from ssgan.config import TrackingConfig
from ssgan.tracking.datasets import Split
from ssgan.tracking.lease import _process_start
from ssgan.tracking.store import TrackingStore, TrackingWriteError
from ssgan.tracking.tracker import RunTracker
from tests.helpers.configs import tiny_overrides
from tests.helpers.mlflow_runs import logged_model_files
from tests.helpers.processes import free_ports, mlflow_server, run_cli
from tests.helpers.repo import REPO_ROOT

_OPEN_STORE_AND_RUN = """
import os, sys, time
import numpy as np
from ssgan.config import TrackingConfig
from ssgan.tracking.datasets import Split
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tracker import RunTracker
root, me, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
tracking = TrackingConfig(uri=f"sqlite:///{root}/mlflow.db", artifact_root=f"{root}/artifacts")
split = Split("/data/test.npz", np.ones((4, 4, 4, 3)), np.arange(4))
# A barrier: every process has imported its modules before any opens the store.
open(f"{root}/ready-{me}", "w").close()
while len([n for n in os.listdir(root) if n.startswith("ready-")]) < count:
    time.sleep(0.01)
store = TrackingStore(tracking)
tracker = RunTracker.start(store, {"process": me}, {}, "start")  # as a training run starts
tracker.log_datasets("synthetic:" + "0" * 64, {"train": split, "test": split})
tracker.finish("FINISHED")
"""


@pytest.mark.e2e
@pytest.mark.slow
def test_many_processes_start_on_a_fresh_store_at_once(tmp_path: Path) -> None:
    """Without the store lock this fails nearly every time (two processes creating or
    migrating the same SQLite schema: 'duplicate column name', 'table ... already exists').
    Each run records the same datasets, as training runs do (the next test repeats the
    race that brings)."""
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
    for run in runs:
        assert len(run.inputs.dataset_inputs) == 2, run.info.run_id


_DATA_FINGERPRINT = "synthetic:" + "0123456789abcdef" * 4


def _start_a_run_and_record_datasets(root: Path, experiment: str, barrier: Any) -> None:
    """One process of the race below: a run started the way a training run starts
    (RunTracker.start, then log_datasets), then FINISHED; an error goes to ``error-<pid>``."""
    tracking = TrackingConfig(uri=f"sqlite:///{root}/mlflow.db", artifact_root=f"{root}/artifacts",
                              experiment=experiment, retry_s=20)  # fmt: skip
    rng = np.random.default_rng(0)  # every process records the same data
    splits = {
        "train": Split("/data/train.npz", rng.normal(size=(8, 4, 4, 3)).astype(np.float32)),
        "validation": Split("/data/train.npz", np.zeros((4, 4, 4, 3)), np.arange(4)),
        "test": Split("/data/test.npz", np.ones((4, 4, 4, 3)), np.arange(4)),
    }
    try:
        barrier.wait(timeout=120)  # open the store and start the run at the same instant
        tracker = RunTracker.start(TrackingStore(tracking), {"process": os.getpid()}, {}, "race")
        # Opening the store and creating the experiment take the store lock one process
        # at a time, which staggers them: line them up again where the datasets go in.
        barrier.wait(timeout=120)
        tracker.log_datasets(_DATA_FINGERPRINT, splits)
        tracker.finish("FINISHED")
    except BaseException as err:
        (root / f"error-{os.getpid()}").write_text(f"{type(err).__name__}: {err}")
        raise


@pytest.mark.e2e
def test_runs_started_at_the_same_instant_all_record_their_datasets(tmp_path: Path) -> None:
    """Processes released together by a barrier each start a run, record the same datasets
    and finish; several rounds: every run is FINISHED with its datasets. MLflow inserts a
    dataset row after checking it is absent, and two processes can both pass the check
    (without the fix in RunTracker.log_datasets most rounds lose a run).

    Round 0 starts on a brand-new store; each round has its own new experiment, and
    dataset rows belong to an experiment, so every round's datasets are first inserts as
    on a fresh store (a new store per round would cost seconds of schema set-up each).
    The processes are forked, so they do not import TensorFlow again; this process opens
    the store only after the last round, so no child inherits its connections."""
    processes, rounds = 3, 5
    # Imported once here (no store is opened) so that each child does not spend seconds on it.
    importlib.import_module("mlflow.store.tracking.sqlalchemy_store")
    importlib.import_module("mlflow.store.model_registry.sqlalchemy_store")
    sqlalchemy.orm.configure_mappers()
    fork = multiprocessing.get_context("fork")
    for round_ in range(rounds):
        barrier = fork.Barrier(processes)
        jobs = [
            fork.Process(
                target=_start_a_run_and_record_datasets, args=(tmp_path, f"round{round_}", barrier)
            )
            for _ in range(processes)
        ]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(timeout=120)
        errors = [p.read_text() for p in sorted(tmp_path.glob("error-*"))]
        assert [job.exitcode for job in jobs] == [0] * processes, (round_, errors)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    expected = {
        (f"synthetic-{split}", _DATA_FINGERPRINT.split(":")[1][:36])
        for split in ("train", "validation", "test")
    }
    for round_ in range(rounds):
        runs = client.search_runs([client.get_experiment_by_name(f"round{round_}").experiment_id])
        assert len(runs) == processes and {r.info.status for r in runs} == {"FINISHED"}, round_
        for run in runs:
            recorded = [(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs]
            assert sorted(recorded) == sorted(expected), round_


@pytest.mark.unit
def test_a_dataset_record_is_tried_again_once_only_after_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The other side of the fix above: a write refused for another reason is refused
    again and raised (the run cannot end FINISHED); a store that stayed unreachable for
    tracking.retry_s is not waited on a second time. (A stand-in client: no store needed.)"""
    client = mock.MagicMock()
    monkeypatch.setattr(TrackingStore, "client", client)
    run = mock.MagicMock()
    store = TrackingStore(TrackingConfig(uri="sqlite:///x.db", retry_s=0.3))
    tracker = RunTracker(store, run)
    splits = {"test": Split("/data/test.npz", np.ones((4, 4, 4, 3)), np.arange(4))}
    loops: list[str] = []
    retrying = tracker._retrying

    def counted(what: str, *args: Any, **kwargs: Any) -> Any:
        loops.append(what)
        return retrying(what, *args, **kwargs)

    monkeypatch.setattr(tracker, "_retrying", counted)
    for code, says, tries in (
        (INVALID_PARAMETER_VALUE, "refused to record the datasets", 2),
        (TEMPORARILY_UNAVAILABLE, "could not record the datasets .* within tracking.retry_s", 1),
    ):
        client.log_inputs.side_effect = MlflowException("the store says no", error_code=code)
        loops.clear()
        with pytest.raises(TrackingWriteError, match=says):
            tracker.log_datasets(_DATA_FINGERPRINT, splits)
        assert loops == ["record the datasets"] * tries
    client.log_inputs.side_effect = None
    loops.clear()
    tracker.log_datasets(_DATA_FINGERPRINT, splits)  # accepted at once: one try
    assert loops == ["record the datasets"]
    tracker.finish("FAILED")


@pytest.mark.integration
def test_a_runs_lease_is_held_only_by_a_live_job(tmp_path: Path, caplog) -> None:
    """Same host: the owner's process decides (a kill -9ed job frees its run at once).
    Another host: the lease's expiry decides."""
    from ssgan.tracking.lease import RunOwnedError, live_owner, refuse_if_owned
    from ssgan.tracking.tags import LEASE_TAG

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("leases")).info.run_id
    me = f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"
    far = time.time() + 3600
    cases = {
        f"{me} {far:.0f}": True,  # this live process
        f"{me} {time.time() - 5:.0f}": True,  # alive though its heartbeat is late
        f"{socket.gethostname()}:999999999:123 {far:.0f}": False,  # that pid is dead
        f"other-host:1:1 {far:.0f}": True,
        f"other-host:1:1 {time.time() - 5:.0f}": False,  # expired
    }
    for lease, owned in cases.items():
        client.set_tag(run_id, LEASE_TAG, lease)
        assert (live_owner(client.get_run(run_id)) is not None) == owned, lease
    # A refusal names the lease's real expiry, not tracking.lease_s.
    client.set_tag(run_id, LEASE_TAG, f"other-host:1:1 {far:.0f}")
    until = dt.datetime.fromtimestamp(round(far), dt.UTC).isoformat(timespec="seconds")
    with pytest.raises(RunOwnedError, match=f"its lease runs until {re.escape(until)}"):
        refuse_if_owned(60.0, client.get_run(run_id))
    # A tag that is not a lease counts as expired, with one warning line each.
    for garbage in ("otherhost:1:2 garbage", "garbage", "otherhost:x:2 99999999999", " 5"):
        client.set_tag(run_id, LEASE_TAG, garbage)
        caplog.clear()
        assert live_owner(client.get_run(run_id)) is None, garbage
        warned = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 1 and "has an unreadable lease" in warned[0].message, garbage
    client.set_terminated(run_id, "KILLED")
    client.set_tag(run_id, LEASE_TAG, f"{me} {far:.0f}")
    assert live_owner(client.get_run(run_id)) is None  # a run that is not RUNNING is free


def _wait_for_running_run(client: MlflowClient, metric: str, timeout: float = 300) -> Run:
    deadline = time.time() + timeout
    while time.time() < deadline:
        experiment = client.get_experiment_by_name("ssgan")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if runs and metric in client.get_run(runs[0].info.run_id).data.metrics:
            return client.get_run(runs[0].info.run_id)
        time.sleep(0.2)
    raise AssertionError(f"no run logged {metric} within {timeout} s")


@pytest.mark.e2e
@pytest.mark.slow
def test_a_live_jobs_run_is_refused_sigterm_marks_it_killed_and_a_rerun_continues_it(
    tmp_path: Path,
) -> None:
    """A second job cannot train a run a live job owns; SIGTERM saves a checkpoint at the
    step reached and marks the run KILLED; rerunning the same command (resume=auto)
    continues that run to FINISHED with every step logged once."""
    overrides = [
        *tiny_overrides(tmp_path),
        # The lease, the signal and the resume, not the GAN: the classifier alone, whose step
        # costs about a third of the GAN's; twice the GAN's steps keep the victim training
        # for about two thirds as long (it must outlive the second job's start).
        "method=supervised",
        "resume=auto",
        "train.steps_per_epoch=800",
        "train.checkpoint_every=1000",  # no periodic checkpoint: only the stop writes one
        "train.log_every=2",
        "train.steps_per_loop=1",
    ]
    victim = subprocess.Popen(
        [sys.executable, "-m", "ssgan.train", *overrides],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run = _wait_for_running_run(client, "train/d_loss")
    run_id = run.info.run_id

    second = run_cli("ssgan.train", *tiny_overrides(tmp_path), f"resume={run_id}", cwd=tmp_path)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and "being trained by another job" in second.stderr
    assert f"pid {victim.pid} " in second.stderr

    victim.send_signal(signal.SIGTERM)
    _, stderr = victim.communicate(timeout=120)
    assert victim.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "marked KILLED" in stderr
    assert "Traceback" not in stderr
    stopped = client.get_run(run_id)
    assert stopped.info.status == "KILLED"
    checkpoints = Path(stopped.info.artifact_uri.removeprefix("file://")) / "checkpoints" / "last"
    saved = int(tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1])
    logged = max(m.step for m in client.get_metric_history(run_id, "train/d_loss"))
    assert saved >= logged > 0  # the stop saved the step it had reached

    rerun = run_cli("ssgan.train", *overrides, cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"run_id: {run_id} (resumed)" in rerun.stdout
    experiment = client.get_experiment_by_name("ssgan")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in client.get_run(run_id).data.metrics:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert len(steps) == len(set(steps)), key


def _assert_worker1_holds_the_same_state(chief_checkpoint: Path, tmp_path: Path) -> None:
    """Worker 1's private checkpoint (in its own, latest Hydra output folder) holds the
    chief's variables bit for bit, batch-norm moving statistics included."""
    chief_state = _checkpoint_variables(chief_checkpoint)
    private = sorted((tmp_path / "worker1").glob("outputs/*/*/worker-1-checkpoints/last"))[-1]
    worker_state = _checkpoint_variables(private)
    assert chief_state.keys() == worker_state.keys()
    assert any("moving_mean" in name for name in chief_state)
    for name, value in chief_state.items():
        np.testing.assert_array_equal(worker_state[name], value, err_msg=name)


def _start_workers(tmp_path: Path, overrides: list[str]) -> list[subprocess.Popen]:
    """Two workers on localhost, one TF_CONFIG cluster, each in its own working folder."""
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        folder = tmp_path / f"worker{index}"
        folder.mkdir(exist_ok=True)
        tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        env.pop("MLFLOW_TRACKING_URI", None)
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "ssgan.train", *overrides],
                cwd=folder,
                env=env,
                text=True,
                stdout=(folder / "stdout.txt").open("a"),
                stderr=(folder / "stderr.txt").open("a"),
            )  # fmt: skip
        )
    return workers


def _checkpoint_variables(folder: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(folder)))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if "OBJECT_GRAPH" not in name
    }


@pytest.mark.e2e
@pytest.mark.slow
def test_two_workers_whose_chiefs_disk_fills_fail_in_one_line_each_and_resume(
    tmp_path: Path,
) -> None:
    """The run's artifacts on a small disk of their own (a tmpfs under the temp folder)
    that fills at the chief's third checkpoint: the chief says so in one line naming that
    folder (it used to blame the temp folder, which had gigabytes free), worker 1 in one
    line quoting TensorFlow's reason (it said "Graph execution error:"), both exit 2, the
    run is FAILED; once the disk is larger, resume on both workers finishes the run."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=964k", "tmpfs", str(disk)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        overrides = [
            *tiny_overrides(tmp_path), f"tracking.artifact_root={disk / 'artifacts'}",
            "train.strategy=multi_worker", "train.steps_per_epoch=24",
            "train.checkpoint_every=4", "train.log_every=2",
        ]  # fmt: skip
        workers = _start_workers(tmp_path, overrides)
        for worker in workers:
            worker.wait(timeout=300)
        stderr = [(tmp_path / f"worker{i}" / "stderr.txt").read_text() for i in range(2)]
        errors = [[line for line in e.splitlines() if line.startswith("error: ")] for e in stderr]
        assert [w.returncode for w in workers] == [2, 2], stderr
        assert [len(e) for e in errors] == [1, 1] and "Traceback" not in "".join(stderr), stderr
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
        (run,) = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
        run_id = run.info.run_id
        folder = disk / "artifacts" / run_id / "artifacts" / "checkpoints" / "last"
        assert errors[0][0].startswith(
            f"error: cannot write checkpoint ckpt-12 in {folder} (No space left on device): "
        ), errors[0]
        assert errors[1][0].startswith("error: a worker of this job was lost (")
        assert "Graph execution error" not in errors[1][0] and f"resume={run_id}" in errors[1][0]
        assert run.info.status == "FAILED"
        assert not list(folder.glob("*temp*"))  # nothing half-written left

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        workers = _start_workers(tmp_path, [*tiny_overrides(tmp_path), f"resume={run_id}"])
        for index, worker in enumerate(workers):
            log = tmp_path / f"worker{index}" / "stderr.txt"
            assert worker.wait(timeout=600) == 0, log.read_text()
        assert client.get_run(run_id).info.status == "FINISHED"
        for key in client.get_run(run_id).data.metrics:
            steps = [m.step for m in client.get_metric_history(run_id, key)]
            assert len(steps) == len(set(steps)), key
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.e2e
@pytest.mark.slow
def test_two_workers_against_a_tracking_server_are_one_run_and_survive_losing_a_worker(
    tmp_path: Path,
) -> None:
    """multi_worker with a real MLflow server and separate working folders (no shared
    file system for checkpoints). Worker 1 is kill -9ed mid-run: the chief says so in one
    line and exits 2. The job resumed on both workers finishes the same run: one run, no
    step logged twice, one uploaded model (only the chief exports), and the chief's
    uploaded checkpoint equals worker 1's private one, moving statistics included."""
    with mlflow_server(tmp_path) as uri:
        store = [*tiny_overrides(tmp_path, seeded=False), f"tracking.uri={uri}"]
        overrides = [
            *store, "train.strategy=multi_worker",
            "method=supervised",  # one run, one model, one state: the classifier is enough
            "train.steps_per_epoch=48", "train.checkpoint_every=4", "train.log_every=2",
        ]  # fmt: skip
        chief, other = _start_workers(tmp_path, overrides)
        client = MlflowClient(uri)
        run = _wait_for_uploaded_checkpoint(client, chief, step=8)
        other.kill()
        other.wait()
        chief.wait(timeout=120)  # the chief notices its lost peer: one line, run resumable
        lost = (tmp_path / "worker0" / "stderr.txt").read_text()
        assert chief.returncode == 2 and "a worker of this job was lost" in lost
        assert "Traceback" not in lost

        run_id = run.info.run_id
        for index, worker in enumerate(_start_workers(tmp_path, [*store, f"resume={run_id}"])):
            stderr = tmp_path / f"worker{index}" / "stderr.txt"
            assert worker.wait(timeout=600) == 0, stderr.read_text()
        runs = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
        assert [r.info.run_id for r in runs] == [run_id]
        finished = client.get_run(run_id)
        assert finished.info.status == "FINISHED" and finished.data.tags["ssgan.workers"] == "2"
        assert "MLmodel" in logged_model_files(client, run_id)
        for key in finished.data.metrics:
            steps = [m.step for m in client.get_metric_history(run_id, key)]
            assert len(steps) == len(set(steps)), key
        uploaded = Path(client.download_artifacts(run_id, "checkpoints/last", str(tmp_path)))
    outputs = [(tmp_path / f"worker{i}" / "stdout.txt").read_text() for i in range(2)]
    assert "model: " in outputs[0] and "model: " not in outputs[1]  # only the chief exports
    assert not (tmp_path / "mlruns").exists()  # nothing went to a local store
    assert not (tmp_path / "mlflow.db").exists()
    _assert_worker1_holds_the_same_state(uploaded, tmp_path)


def _wait_for_uploaded_checkpoint(client: MlflowClient, chief: Any, step: int) -> Run:
    """The job's run once the chief has uploaded the checkpoint of ``step`` or later."""
    from ssgan.tracking.tags import CHECKPOINT_STEP_TAG

    deadline = time.time() + 300
    while time.time() < deadline and chief.poll() is None:
        experiment = client.get_experiment_by_name("ssgan")
        for run in client.search_runs([experiment.experiment_id]) if experiment else []:
            if int(run.data.tags.get(CHECKPOINT_STEP_TAG, -1)) >= step:
                return run
        time.sleep(0.2)
    raise AssertionError(f"the job uploaded no checkpoint of step {step} or later")


@pytest.mark.integration
def test_checkpoint_uploads_send_only_new_or_changed_files(tiny_cfg, tmp_path: Path) -> None:
    from ssgan.tracking.tracker import RunTracker

    tracker = RunTracker.start(TrackingStore(tiny_cfg.tracking), {}, {}, "uploads")
    sent: list[str] = []
    real = tracker.log_artifact
    tracker.log_artifact = lambda path, dest=None: (sent.append(Path(path).name), real(path, dest))
    folder = tmp_path / "checkpoints"
    (folder / "last").mkdir(parents=True)
    (folder / "last" / "ckpt-1.index").write_text("1")
    (folder / "last" / "checkpoint").write_text("ckpt-1")
    tracker.sync_artifacts(folder, "checkpoints")
    assert sorted(sent) == ["checkpoint", "ckpt-1.index"]
    sent.clear()
    (folder / "last" / "ckpt-2.index").write_text("2")
    (folder / "last" / "checkpoint").write_text("ckpt-2!")
    tracker.sync_artifacts(folder, "checkpoints")
    assert sorted(sent) == ["checkpoint", "ckpt-2.index"]
    tracker.finish("FINISHED")
    stored = Path(tracker.artifact_uri.removeprefix("file://")) / "checkpoints" / "last"
    assert (stored / "checkpoint").read_text() == "ckpt-2!"


def _submitit_sweep(tmp_path: Path, *overrides: str) -> subprocess.Popen:
    """A one-job grid sweep of a smoke run through the submitit launcher's local executor
    (the SLURM path run here), continuing its own run (``resume=auto``)."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "ssgan.train", "-m", *tiny_overrides(tmp_path),
            "resume=auto", "train.log_every=2", *overrides,
            "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _submitit_job(sweep: subprocess.Popen, tmp_path: Path, has: Any) -> Run:
    """The sweep's job run once ``has(run)`` holds (it trains, it has a checkpoint)."""
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    # A generous deadline: on a loaded 2-core machine the job's start (TensorFlow import,
    # tracing) has taken minutes. A sweep that ends first has failed: stop waiting then.
    deadline = time.time() + 600
    while sweep.poll() is None and time.time() < deadline:
        experiment = client.get_experiment_by_name("ssgan")
        children = [
            r
            for r in (client.search_runs([experiment.experiment_id]) if experiment else [])
            if "mlflow.parentRunId" in r.data.tags and has(r)
        ]
        if children:
            return children[0]
        time.sleep(0.5)
    sweep.kill()
    _, stderr = sweep.communicate()
    job_logs = "".join(p.read_text() for p in (tmp_path / "multirun").rglob("*_log.*"))
    pytest.fail(f"the submitit job never got that far\n{stderr}\n{job_logs}")


def _lease_pid(run: Run) -> int:
    from ssgan.tracking.tags import LEASE_TAG

    return int(run.data.tags[LEASE_TAG].split()[0].split(":")[1])


@pytest.mark.e2e
@pytest.mark.slow
def test_a_submitit_job_killed_hard_is_one_line_and_the_same_command_continues_it(
    tmp_path: Path,
) -> None:
    """The SLURM path through the submitit launcher's local executor, one run through its
    three ways of ending early. ``kill -9`` of the job after a checkpoint: the launcher's
    parent says so in one line (it printed submitit's traceback) naming the run left
    RUNNING, exits 1 at once, and marks the sweep FAILED; the dead job's lease does not
    hold the run, so the same command again continues it, and the sweep's parent run
    with it (one parent, FINISHED at the end). That job then gets SIGUSR2
    (what submitit sends before a time limit or at preemption): it checkpoints, marks the
    run KILLED and hands the signal to submitit, which requeues it through its
    checkpointing hook; the requeued job (``resume=auto``) finishes the same run with
    every step logged once."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from ssgan.tracking.tags import CHECKPOINT_STEP_TAG

    # The supervised method: the launcher's plumbing is the point, not the GAN's step.
    # 600 steps: with 200 the job once finished (15 s from its start) before the test saw
    # its first checkpoint and could kill it.
    settings = ["method=supervised", "train.epochs=1", "train.steps_per_epoch=600",
                "train.checkpoint_every=10"]  # fmt: skip
    sweep = _submitit_sweep(tmp_path, *settings)
    job = _submitit_job(sweep, tmp_path, lambda run: CHECKPOINT_STEP_TAG in run.data.tags)
    run_id, killed_pid = job.info.run_id, _lease_pid(job)
    os.kill(killed_pid, signal.SIGKILL)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 1, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    assert lines[0].startswith("error: a job of this sweep ended without a result (killed"), stderr
    assert f"run {run_id} is left RUNNING: python -m ssgan.train resume={run_id}" in lines[0]
    assert f"resume=auto hydra.sweep.dir={tmp_path / 'multirun'})" in lines[0]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert client.get_run(run_id).info.status == "RUNNING"
    parent = client.get_run(job.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED"

    killed_at = int(client.get_run(run_id).data.tags[CHECKPOINT_STEP_TAG])
    again = _submitit_sweep(tmp_path, *settings)
    # The new job holds the run once it has written a checkpoint of its own.
    job = _submitit_job(
        again, tmp_path, lambda run: int(run.data.tags[CHECKPOINT_STEP_TAG]) > killed_at
    )
    assert _lease_pid(job) != killed_pid
    os.kill(_lease_pid(job), signal.SIGUSR2)
    out, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    # The sweep continued, not begun again: its parent run reopened, ended FINISHED.
    assert f"sweep parent run: {parent.info.run_id} (continued" in out, out
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["ssgan.runs"] == "1"
    job_logs = "".join(p.read_text() for p in (tmp_path / "multirun").rglob("*_log.*"))
    assert "stopped by SIGUSR2" in job_logs and "Requeued job" in job_logs, job_logs
    assert job_logs.count(f"run_id: {run_id} (resumed)") == 2, job_logs
    runs = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [r.info.run_id for r in children] == [run_id]  # one run, continued twice
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.metrics["best/val_accuracy"] >= 0
    for key in finished.data.metrics:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert len(steps) == len(set(steps)), key


@pytest.mark.e2e
@pytest.mark.slow
def test_mirrored_on_logical_cpus_from_the_command_line(tmp_path: Path) -> None:
    """train.cpu_replicas splits the CPU so the mirrored path runs without GPUs."""
    result = run_cli(
        "ssgan.train", *tiny_overrides(tmp_path), "train.strategy=mirrored",
        "train.cpu_replicas=2", "train.epochs=1", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["ssgan.replicas"] == "2"
