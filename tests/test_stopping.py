"""Stop signals: recorded by the handler, honoured at safe points, never lost, and a job
asked to stop always ends (data generation, waiting for workers, TensorFlow's own
SIGTERM handler included)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ssgan.errors import UserError
from ssgan.stopping import JobStopped, check_stop, clear_stop, stop_requested
from ssgan.training.distribute import WorkerRole
from ssgan.training.job import stop_signals
from ssgan.training.peers import wait_for_workers
from tests.helpers.configs import tiny_overrides
from tests.helpers.processes import free_ports
from tests.helpers.repo import REPO_ROOT


@pytest.mark.integration
def test_a_signal_only_records_the_stop_until_a_safe_point_raises_it() -> None:
    with stop_signals():
        os.kill(os.getpid(), signal.SIGTERM)  # a raising handler would raise right here
        time.sleep(0.05)
        assert stop_requested()
        os.kill(os.getpid(), signal.SIGINT)  # the first signal wins
        with pytest.raises(JobStopped) as stopped:
            check_stop()
    assert stopped.value.signal_name == "SIGTERM" and stopped.value.exit_status == 143
    clear_stop()


@pytest.mark.unit
def test_job_stopped_crosses_process_boundaries() -> None:
    """A worker pool sends exceptions back pickled; the old JobStopped could not be
    rebuilt from its pickle, which broke the pool and hung the job."""
    again = pickle.loads(pickle.dumps(JobStopped(signal.SIGINT)))
    assert isinstance(again, JobStopped) and again.signum == signal.SIGINT
    assert str(again) == "stopped by SIGINT"


@pytest.mark.integration
def test_waiting_for_workers_names_them_has_a_limit_and_honours_stops(caplog) -> None:
    mine, missing = free_ports(2)
    role = WorkerRole(
        True, 0, 2, (("worker 0", f"127.0.0.1:{mine}"), ("worker 1", f"127.0.0.1:{missing}"))
    )
    with pytest.raises(UserError) as late:
        wait_for_workers(role, limit_s=1.0)
    assert f"worker 1 (127.0.0.1:{missing}) did not start within train.worker_wait_s=1" in str(
        late.value
    )
    assert f"waiting for worker 1 (127.0.0.1:{missing})" in caplog.text
    with stop_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(JobStopped):
            wait_for_workers(role, limit_s=600)
    clear_stop()


_TF_SIGTERM_PROBE = """
import json, os, signal, sys
os.environ["TF_CONFIG"] = json.dumps(
    {"cluster": {"worker": [f"127.0.0.1:{sys.argv[1]}"]}, "task": {"type": "worker", "index": 0}})
from ssgan.runtime import start_tensorflow; start_tensorflow()
import tensorflow as tf
from ssgan.stopping import stop_requested
from ssgan.training.job import install_handlers, stop_signals
with stop_signals():
    tf.distribute.MultiWorkerMirroredStrategy()  # installs a C-level SIGTERM handler
    install_handlers()
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(100):
        if stop_requested():
            break
        __import__("time").sleep(0.01)
print("stop requested" if stop_requested() else "SIGTERM lost")
"""


@pytest.mark.e2e
def test_sigterm_reaches_the_job_after_tensorflows_multi_worker_runtime_starts() -> None:
    port = free_ports(1)[0]
    probe = subprocess.run(
        [sys.executable, "-c", _TF_SIGTERM_PROBE, str(port)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert probe.stdout.strip() == "stop requested", probe.stderr[-2000:]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _forked_workers(pid: int) -> list[int]:
    """Children of ``pid`` forked from it (the same command line): the render workers, not
    a short-lived program it runs (``ldconfig`` for ctypes, ``git``), which could end the
    wait below and leave no worker to find (the test failed so once, under load)."""

    def cmdline(p: int) -> bytes:
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            return b""

    own = cmdline(pid)
    return [child for child in _children(pid) if own and cmdline(child) == own]


@pytest.mark.e2e
def test_ctrl_c_while_the_data_is_generated_ends_the_job(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group) while the render workers are forked
    used to be swallowed ('Exception ignored ... JobStopped') and the job never ended."""
    overrides = [
        *tiny_overrides(tmp_path), "data.train_size=40000", "data.test_size=2000",
        "data.num_workers=2",
    ]  # fmt: skip
    victim = subprocess.Popen(
        [sys.executable, "-m", "ssgan.train", *overrides], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 180
    workers: list[int] = []
    while not workers and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
        workers = _forked_workers(victim.pid)
    assert workers, f"the render workers never started (exit {victim.poll()})"
    os.killpg(victim.pid, signal.SIGINT)
    _, stderr = victim.communicate(timeout=60)
    assert victim.returncode == 130, stderr[-2000:]
    assert "stopped by SIGINT: before a run was started" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    store = tmp_path / "mlruns" / "mlflow.db"
    if store.exists():
        client = MlflowClient(f"sqlite:///{store}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])
