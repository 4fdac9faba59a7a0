"""The tracking store: URIs checked before any work, a record complete or marked otherwise."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ssgan.cli import compose_config
from ssgan.config import TrackingConfig
from ssgan.tracking.store import TrackingError, TrackingStore, check_store
from ssgan.training.run import train
from tests.helpers.configs import tiny_overrides
from tests.helpers.processes import run_cli


def _tracking(uri: str, timeout_s: float = 2.0):
    return TrackingConfig(uri=uri, timeout_s=timeout_s)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("foo://bar", "is not a tracking store: allowed sqlite:///PATH"),
        ("garbage", "is not a tracking store"),
        ("file:///tmp/mlruns", "is a plain-file store, which MLflow 3 deprecates"),
        ("file:mlruns", "is a plain-file store"),
        ("sqlite://", "is not a SQLite file store"),
        ("sqlite:////proc/x/mlflow.db", "cannot create the folder /proc/x"),
    ],
)
def test_unusable_tracking_uris_are_one_line(uri: str, says: str) -> None:
    with pytest.raises(TrackingError, match="tracking.uri=") as info:
        check_store(_tracking(uri))
    assert says in str(info.value) and "\n" not in str(info.value)


@pytest.mark.unit
def test_a_postgresql_store_needs_only_its_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """A team's PostgreSQL store is accepted once its driver (the postgres extra) is
    installed, and refused in one line naming the extra without it; neither connects."""
    import importlib.util

    uri = "postgresql://me:secret@db.example/ssgan"
    with pytest.raises(TrackingError) as refused:
        check_store(_tracking(uri))
    line = str(refused.value)
    assert line == (
        "tracking.uri=postgresql://me:***@db.example/ssgan: a PostgreSQL store needs the "
        "psycopg2 driver, which is not installed: pip install 'ssgan[postgres]' (the "
        "project's postgres extra)"
    )
    real = importlib.util.find_spec
    installed = lambda name, *a: object() if name == "psycopg2" else real(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", installed)
    check_store(_tracking(uri))  # accepted: opening it is MLflow's (SQLAlchemy's) job
    with pytest.raises(TrackingError, match="needs the pg8000 driver"):
        check_store(_tracking("postgresql+pg8000://me@db.example/ssgan"))


@pytest.mark.unit
def test_the_default_store_and_experiment_are_mlflows_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlflow ui` and mlflow.search_runs() with no arguments open the store runs go to
    by default; MLFLOW_EXPERIMENT_NAME names the experiment unless tracking.experiment
    does."""
    from mlflow.store.tracking import DEFAULT_TRACKING_URI

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    default = compose_config("config", []).tracking
    assert (default.uri, default.experiment) == (DEFAULT_TRACKING_URI, "ssgan")
    assert TrackingConfig().uri == DEFAULT_TRACKING_URI
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-study")
    assert compose_config("config", []).tracking.experiment == "team-study"
    assert compose_config("promote", []).tracking.experiment == "team-study"
    chosen = compose_config("config", ["tracking.experiment=mine"]).tracking.experiment
    assert chosen == "mine"


@pytest.mark.unit
def test_an_earlier_versions_default_store_is_kept_with_one_line_on_moving_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssgan.cli import check_overrides
    from ssgan.config_checks import validate_train_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "mlflow.db").write_bytes(b"")
    check_overrides("config", ["tracking.experiment=x"], validate_train_config)
    assert compose_config("config", []).tracking.uri == "sqlite:///mlruns/mlflow.db"
    note = capsys.readouterr().err.strip().splitlines()
    assert note == [
        "note: using sqlite:///mlruns/mlflow.db, an earlier version's default store; `mv "
        "mlruns/mlflow.db mlflow.db` moves it to today's default sqlite:///mlflow.db "
        "(MLflow's own, which `mlflow ui` opens)"
    ]
    # Moved (or a store named on the command line): the default is MLflow's again.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    (tmp_path / "mlruns" / "mlflow.db").rename(tmp_path / "mlflow.db")
    check_overrides("config", [], validate_train_config)
    assert "MLFLOW_TRACKING_URI" not in __import__("os").environ
    assert compose_config("config", []).tracking.uri == "sqlite:///mlflow.db"


@pytest.mark.unit
def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_text("not a database")
    with pytest.raises(TrackingError, match="is not a SQLite database"):
        check_store(_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}"))


@pytest.mark.e2e
def test_cli_refuses_bad_and_unreachable_stores_before_any_work(tmp_path: Path) -> None:
    """Nothing listens on port 9: the command fails in seconds, before data are made."""
    for uri, says in (
        ("foo://bar", "is not a tracking store"),
        ("file:./mlruns", "is a plain-file store, which MLflow 3 deprecates"),
        ("postgresql://me:secret@db/ssgan", "pip install 'ssgan[postgres]'"),
        ("http://127.0.0.1:9", "does not answer within tracking.timeout_s=3"),
    ):
        started = time.monotonic()
        result = run_cli("ssgan.train", *tiny_overrides(tmp_path, seeded=False),
                         f"tracking.uri={uri}", "tracking.timeout_s=3", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert time.monotonic() - started < 60  # was 4 min 15 s of retries
        assert "secret" not in result.stderr
        # The store's URI is checked before Hydra starts: no outputs/ folder, no data.
        assert list(tmp_path.iterdir()) == [], (uri, list(tmp_path.iterdir()))


@pytest.mark.e2e
def test_timeout_and_retry_are_validated(tmp_path: Path) -> None:
    for key in ("tracking.timeout_s=0", "tracking.retry_s=-1"):
        result = run_cli("ssgan.train", *tiny_overrides(tmp_path), key, cwd=tmp_path)
        assert result.returncode == 2 and "out of range" in result.stderr, result.stderr


# -- a store that is locked for a while ----------------------------------------------------

_LOCKER = """
import sqlite3, sys, time
from pathlib import Path
db, ready, release, hold = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
deadline = time.time() + 300
while time.time() < deadline:  # wait for the run's first training metric
    try:
        con = sqlite3.connect(db, timeout=0.1, isolation_level=None)
        if con.execute("SELECT count(*) FROM metrics WHERE key='train/d_loss'").fetchone()[0]:
            break
        con.close()
    except sqlite3.Error:
        pass
    time.sleep(0.02)
con.execute("BEGIN EXCLUSIVE")
ready.touch()
end = time.time() + hold
while time.time() < end and not release.exists():
    time.sleep(0.05)
con.execute("COMMIT")
"""


def _locker(tmp_path: Path, hold_s: float) -> tuple[subprocess.Popen, Path, Path]:
    """Another process that takes an exclusive lock on the store once the run logs its
    first training metric, and holds it ``hold_s`` seconds (or until told to let go)."""
    ready, release = tmp_path / "locked", tmp_path / "release"
    db = tmp_path / "mlruns" / "mlflow.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(db), str(ready), str(release), str(hold_s)]
    )
    return proc, ready, release


def _history_steps(client: MlflowClient, run_id: str) -> dict[str, list[int]]:
    run = client.get_run(run_id)
    return {
        key: [m.step for m in client.get_metric_history(run_id, key)] for key in run.data.metrics
    }


@pytest.mark.e2e
@pytest.mark.slow
def test_store_locked_for_seconds_loses_no_metric(tmp_path: Path) -> None:
    """A lock outlasting one write's wait (tracking.timeout_s): writes are retried and the
    run ends FINISHED with every point, each once."""
    locker, ready, _ = _locker(tmp_path, hold_s=3)
    cfg = compose_config("config", [*tiny_overrides(tmp_path), "train.steps_per_epoch=16",
                                    "tracking.timeout_s=0.5", "tracking.retry_s=60"])  # fmt: skip
    try:
        summary = train(cfg)
    finally:
        locker.wait(timeout=60)
    assert ready.exists(), "the store was never locked during the run"
    client = MlflowClient(str(cfg.tracking.uri))
    assert client.get_run(summary.run_id).info.status == "FINISHED"
    steps = _history_steps(client, summary.run_id)
    assert steps["train/d_loss"] == [4, 8, 12, 16, 20, 24, 28, 32]
    assert steps["val/accuracy"] == [16, 32]
    for key in ("best/val_accuracy", "best/test_accuracy", "export/test_accuracy"):
        assert steps[key] == [32], key


@pytest.mark.e2e
@pytest.mark.slow
def test_store_locked_until_the_end_fails_loudly_never_finished(tmp_path: Path) -> None:
    locker, ready, release = _locker(tmp_path, hold_s=300)
    try:
        result = run_cli("ssgan.train", *tiny_overrides(tmp_path), "tracking.timeout_s=0.5",
                         "tracking.retry_s=2", "method=supervised",  # the store, not the GAN
                         cwd=tmp_path, timeout=240)  # fmt: skip
    finally:
        release.touch()
        locker.wait(timeout=60)
    assert ready.exists(), "the store was never locked during the run"
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run ") and "metric points were not recorded" in last
    assert "retry_s=2" in last and "still shows run" in last and "RUNNING" in last
    assert (
        "Traceback" not in result.stderr and "database is locked" not in result.stderr[: -len(last)]
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
    assert run.info.status != "FINISHED"


@pytest.mark.integration
def test_busy_timeout_bound_holds_on_mlflows_engines_only(tmp_path: Path) -> None:
    """tracking.timeout_s bounds how long MLflow's own SQLite sessions wait for a lock,
    by rewriting the statement MLflow opens them with, on the store's file only (other
    databases keep theirs), without reaching into MLflow's client. Fails if MLflow's text
    changes (the rewrite would silently stop) or the bound is lost."""
    import inspect

    import mlflow.store.db.utils as mlflow_db
    import sqlalchemy

    import ssgan.tracking.store
    from ssgan.tracking.store import MLFLOW_BUSY_PRAGMA

    assert MLFLOW_BUSY_PRAGMA.search(inspect.getsource(mlflow_db))
    assert "_tracking_client" not in inspect.getsource(ssgan.tracking.store)
    cfg = _tracking(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}", timeout_s=0.75)
    client = TrackingStore(cfg).client
    # MLflow's engines, reached here through its privates (the store needs none of them).
    stores = (client._tracking_client.store, client._get_registry_client().store)
    engines = [store.engine for store in stores]
    assert len(engines) == 2  # tracking and model registry
    seen: list[str] = []
    for engine in engines:
        sqlalchemy.event.listen(engine, "after_cursor_execute", lambda *a: seen.append(a[2]))
    for store in stores:
        with store.ManagedSessionMaker() as session:  # opens as MLflow opens every session
            assert session.execute(sqlalchemy.text("PRAGMA busy_timeout")).scalar() == 750
    assert seen.count("PRAGMA busy_timeout = 750;") == 2  # MLflow's statement, rewritten
    other = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with other.connect() as conn:
        conn.execute(sqlalchemy.text("PRAGMA busy_timeout = 20000;"))
        assert conn.execute(sqlalchemy.text("PRAGMA busy_timeout")).scalar() == 20000


@pytest.mark.unit
def test_a_store_is_checked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    monkeypatch.setattr("ssgan.tracking.store.check_store", lambda cfg: checked.append(cfg.uri))
    store = TrackingStore(_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    assert checked == []  # building it reads nothing
    store.check()
    store.check()
    assert len(checked) == 1


@pytest.mark.unit
def test_the_store_lock_is_reentrant_within_one_store_only(tmp_path: Path) -> None:
    """Nested lock() blocks of one store take the file lock once and hold it until the
    outermost ends; anyone else (another open of the lock file) is kept out meanwhile."""
    import fcntl

    store = TrackingStore(_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}"))

    def free() -> bool:
        with open(tmp_path / "mlflow.db.lock", "a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(other, fcntl.LOCK_UN)
            return True

    with store.lock():
        with store.lock():
            assert not free()
        assert not free()  # the inner block ended: still held by the outer one
    assert free()
    with TrackingStore(_tracking("http://127.0.0.1:9")).lock():  # a server: no lock file
        pass


@pytest.mark.integration
def test_the_experiment_is_created_once_and_then_remembered(tmp_path: Path) -> None:
    cfg = _tracking(f"sqlite:///{tmp_path / 'mlflow.db'}")
    cfg = replace(cfg, artifact_root=str(tmp_path / "artifacts"))
    store = TrackingStore(cfg)
    assert store.find_experiment_id() is None  # reading creates nothing
    created = store.experiment_id()
    asked: list[str] = []
    real = store.client.get_experiment_by_name
    store.client.get_experiment_by_name = lambda name: asked.append(name) or real(name)
    assert store.experiment_id() == store.find_experiment_id() == created
    assert asked == []  # remembered: the store is not asked again
    other = TrackingStore(cfg)  # another job on the same store finds it, creates none
    assert other.experiment_id() == created
    assert [e.name for e in other.client.search_experiments()].count("ssgan") == 1


@pytest.mark.integration
def test_two_stores_in_one_process_do_not_interfere(tmp_path: Path) -> None:
    """Each store reaches its own database, also through the MLflow calls that read the
    process's global URI; opening or writing to a store leaves that URI alone."""
    import mlflow

    from ssgan.tracking.runs import get_run, runs_dataframe, search_runs
    from ssgan.tracking.tracker import create_run

    stores = {}
    for name in ("a", "b"):
        cfg = _tracking(f"sqlite:///{tmp_path / name / 'mlflow.db'}")
        cfg = replace(cfg, artifact_root=str(tmp_path / name / "artifacts"))
        stores[name] = TrackingStore(cfg)
    before = mlflow.get_tracking_uri()
    runs = {name: create_run(store, f"run-{name}", {}, {}) for name, store in stores.items()}
    for run in runs.values():
        run.finish("FINISHED")
    assert mlflow.get_tracking_uri() == before
    for name, other in (("a", "b"), ("b", "a")):
        store = stores[name]
        assert [r.info.run_id for r in search_runs(store)] == [runs[name].run_id]
        assert get_run(store, runs[name].run_id).info.run_name == f"run-{name}"
        with pytest.raises(TrackingError, match="was not found"):
            get_run(store, runs[other].run_id)
        stores[other].use_in_fluent_api()  # the other store's fluent call came last
        assert list(runs_dataframe(store)["run_id"]) == [runs[name].run_id]


@pytest.mark.integration
def test_a_deleted_run_or_experiment_is_named_with_how_to_restore_it(tmp_path: Path) -> None:
    """A run deleted while it trained said resume would continue it (resume refused it); a
    deleted experiment made every new run an MlflowException traceback."""
    from ssgan.errors import UserError
    from ssgan.tracking.store import RunDeletedError
    from ssgan.tracking.tracker import RunTracker
    from ssgan.training.resume import resumed_config

    cfg = compose_config("config", tiny_overrides(tmp_path))
    store = TrackingStore(TrackingConfig(uri=cfg.tracking.uri, retry_s=0.5))
    tracker = RunTracker.start(store, {}, {}, "deleted")
    run_id = tracker.run_id
    store.client.delete_run(run_id)
    with pytest.raises(RunDeletedError, match=f"mlflow runs restore --run-id {run_id}"):
        tracker.set_tags({"a": "b"})
    cfg.resume = run_id
    with pytest.raises(UserError, match=r"the run is deleted .* \(mlflow runs restore") as err:
        resumed_config(cfg, store)
    assert "\n" not in str(err.value)

    store.client.delete_experiment(store.experiment_id())
    fresh = TrackingStore(TrackingConfig(uri=cfg.tracking.uri))
    with pytest.raises(TrackingError, match="mlflow experiments restore --experiment-id"):
        fresh.experiment_id()


@pytest.mark.unit
def test_a_full_database_disk_is_not_waited_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's "database or disk is full" reaches the tracker as MLflow's
    TEMPORARILY_UNAVAILABLE: each write was retried for tracking.retry_s, so a chief whose
    store's disk filled took three of them (metrics, error tag, status) to end, and its
    other workers waited as long. It fails at the first try now; a locked store is still
    retried. (A stand-in client: no store needed.)"""
    from unittest import mock

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    from ssgan.tracking.store import TrackingWriteError
    from ssgan.tracking.tracker import RunTracker

    client = mock.MagicMock()
    monkeypatch.setattr(TrackingStore, "client", client)
    tracker = RunTracker(
        TrackingStore(TrackingConfig(uri="sqlite:///x.db", retry_s=60)), mock.MagicMock()
    )
    full = "(sqlite3.OperationalError) database or disk is full"
    client.log_batch.side_effect = MlflowException(full, error_code=TEMPORARILY_UNAVAILABLE)
    started = time.monotonic()
    with pytest.raises(TrackingWriteError, match=r"refused to set tags \(.*database or disk"):
        tracker.set_tags({"a": "b"})
    assert time.monotonic() - started < 5 and client.log_batch.call_count == 1
    locked = "(sqlite3.OperationalError) database is locked"
    client.log_batch.side_effect = [
        MlflowException(locked, error_code=TEMPORARILY_UNAVAILABLE),
        None,
    ]
    tracker.set_tags({"a": "b"})  # retried, then accepted
    assert client.log_batch.call_count == 3


@pytest.mark.unit
def test_a_refused_write_names_the_databases_reason_not_sqlalchemys_note() -> None:
    """A store file replaced mid-run failed after its retries 'because' of SQLAlchemy's
    autoflush note; the line now gives what the database said."""
    from ssgan.tracking.store_errors import refusal_reason

    err = RuntimeError(
        "(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush"
        " block if this flush is occurring prematurely)\n"
        "(sqlite3.OperationalError) attempt to write a readonly database\n[SQL: INSERT ...]"
    )
    assert refusal_reason(err) == "(sqlite3.OperationalError) attempt to write a readonly database"
    assert refusal_reason(RuntimeError()) == "RuntimeError"


@pytest.mark.integration
def test_a_store_that_cannot_be_created_is_one_line_and_leaves_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlflow.db on a disk that filled while MLflow created its schema: a SQLAlchemy
    traceback, and half a database every later run failed on."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(MlflowClient, "search_registered_models", full)
    db = tmp_path / "mlflow.db"
    store = TrackingStore(TrackingConfig(uri=f"sqlite:///{db}"))
    with pytest.raises(TrackingError, match=r"cannot create .*\(database or disk is full\)"):
        store.experiment_id()  # the first use opens (here: creates) the store
    assert not db.exists()


@pytest.mark.integration
@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
def test_a_run_that_ended_loses_its_lease(tmp_path: Path, status: str) -> None:
    """``ssgan.lease`` names the live job that owns a run: once the run ended no job does
    (a search's trial runs end the same way)."""
    from ssgan.tracking.tags import LEASE_TAG
    from ssgan.tracking.tracker import RunTracker

    store = TrackingStore(_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}"))
    tracker = RunTracker.start(store, {"a": 1}, {}, "leased")
    assert LEASE_TAG in store.client.get_run(tracker.run_id).data.tags
    tracker.finish(status, error=None if status == "FINISHED" else "stopped")
    run = store.client.get_run(tracker.run_id)
    assert run.info.status == status and LEASE_TAG not in run.data.tags
