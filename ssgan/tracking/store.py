"""Tracking stores: check a ``tracking.uri`` before work starts, open it safely from many
processes at once, and get or create the experiment."""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from sqlalchemy import event
from sqlalchemy.engine import Connection, ExecutionContext

from ssgan.errors import UserError


class TrackingError(UserError):
    """A run, store or artifact that cannot be used."""


class TrackingWriteError(TrackingError):
    """The store refused a write for longer than ``tracking.retry_s``: the run's record
    would have holes, so the run must not end FINISHED."""


def _is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


ALLOWED_URIS = "sqlite:///PATH (a local SQLite file) or http(s)://HOST:PORT (an MLflow server)"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRY_S = 120.0
_SQLITE_HEADER = b"SQLite format 3\x00"
_checked_stores: set[tuple[str, float]] = set()
# How long one SQLite statement waits for a lock held by another process (MLflow's own
# default is 20 s), per store URI; set from tracking.timeout_s by check_store.
_sqlite_busy_ms: dict[str, int] = {}
# The statement MLflow opens every SQLite session with (mlflow/store/db/utils.py); MLflow
# has no setting for it, so its engines (and only those) get it rewritten.
# tests/test_tracking.py fails if MLflow's text or its engines change under this.
MLFLOW_BUSY_PRAGMA = re.compile(r"\s*pragma\s+busy_timeout\s*=", re.IGNORECASE)
# MLflow's HTTP client settings as the user's environment had them (those win over ours).
_USER_HTTP_ENV = {
    name: os.environ.get(name)
    for name in (
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    )
}


def _bound_busy_wait(engine: object, uri: str) -> None:
    """Listen on one of MLflow's SQLite engines: its ``PRAGMA busy_timeout = 20000`` becomes
    ``tracking.timeout_s``, so a locked store is retried on our schedule, not 20 s a try."""

    def rewrite(
        conn: Connection,
        cursor: object,
        statement: str,
        parameters: object,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> tuple[str, object]:
        ms = _sqlite_busy_ms.get(uri)
        if ms is not None and MLFLOW_BUSY_PRAGMA.match(statement):
            statement = f"PRAGMA busy_timeout = {ms};"
        return statement, parameters

    if engine is not None and not getattr(engine, "_ssgan_busy_bound", False):
        event.listen(engine, "before_cursor_execute", rewrite, retval=True)
        engine._ssgan_busy_bound = True  # type: ignore[attr-defined]  # our mark on it


def mlflow_engines(client: MlflowClient) -> list[object]:
    """The SQLAlchemy engines behind a client's tracking and registry stores (none for a
    tracking server)."""
    stores = (client._tracking_client.store, client._get_registry_client().store)
    return [e for e in (getattr(s, "engine", None) for s in stores) if e is not None]


def check_store(tracking_cfg: DictConfig) -> None:
    """Refuse a ``tracking.uri`` that cannot work, in one line, before any work starts:
    an unknown scheme, a SQLite file whose folder cannot be created or that is not a
    SQLite database, an MLflow server that does not answer within ``tracking.timeout_s``."""
    uri = str(tracking_cfg.uri)
    timeout = float(OmegaConf.select(tracking_cfg, "timeout_s", default=DEFAULT_TIMEOUT_S))
    if (uri, timeout) in _checked_stores:
        return
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        _check_sqlite(uri)
        _sqlite_busy_ms[uri] = max(1, int(timeout * 1000))
    elif scheme in ("http", "https"):
        _bound_http_client(timeout)
        _check_server(uri, timeout)
    else:
        raise TrackingError(f"tracking.uri={uri} is not a tracking store: allowed {ALLOWED_URIS}")
    _checked_stores.add((uri, timeout))


def _check_sqlite(uri: str) -> None:
    path = uri[len("sqlite:///") :] if _is_local_sqlite(uri) else ""
    if not path or path.startswith(":memory:") or "?" in path:
        raise TrackingError(
            f"tracking.uri={uri} is not a SQLite file store: write sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    db = Path(path)
    _probe_folder(db.parent, uri)
    if db.is_dir():
        raise TrackingError(f"tracking.uri={uri}: {db} is a folder, not a SQLite file")
    if db.is_file() and db.stat().st_size > 0:
        with open(db, "rb") as handle:
            if handle.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
                raise TrackingError(
                    f"tracking.uri={uri}: {db} is not a SQLite database; point tracking.uri "
                    "at the store's mlflow.db or at a new file"
                )


def _probe_folder(folder: Path, uri: str) -> None:
    """Check the store's folder can be created, leaving nothing behind: the store itself
    is created only when a run starts."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrackingError(
            f"tracking.uri={uri}: cannot create the folder {folder} "
            f"({err.strerror or err}); choose a writable place for the store"
        ) from err
    finally:
        for created in missing:
            try:
                created.rmdir()
            except OSError:
                break  # someone else is using it now


def _bound_http_client(timeout: float) -> None:
    """MLflow retries an unreachable server for minutes by default: one request may take
    ``tracking.timeout_s``, and RunTracker does the retrying (``tracking.retry_s``)."""
    ours = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    for name, value in ours.items():
        if _USER_HTTP_ENV[name] is None:
            os.environ[name] = value


def _check_server(uri: str, timeout: float) -> None:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answers: whatever the status, the server is there
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"tracking.uri={uri} does not answer within tracking.timeout_s={timeout:g} "
            f"({reason}): start the MLflow server or fix the URI"
        ) from err


def client_for(tracking_cfg: DictConfig) -> MlflowClient:
    """An MlflowClient on ``tracking.uri`` once :func:`check_store` accepts it; a local
    SQLite store is created (or migrated) on first use under a file lock, so many
    processes may start on a fresh store at once."""
    check_store(tracking_cfg)
    uri = str(tracking_cfg.uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if not _is_local_sqlite(uri) or uri in _opened_stores:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    with store_lock(tracking_cfg):
        # Opening a store creates or migrates its schema (MLflow then caches the store in
        # the process); two processes doing it at once corrupt a fresh database.
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        for engine in mlflow_engines(client):
            _bound_busy_wait(engine, uri)
        client.search_registered_models(max_results=1)
    _opened_stores.add(uri)
    return client


_opened_stores: set[str] = set()


@contextlib.contextmanager
def store_lock(tracking_cfg: DictConfig) -> Iterator[None]:
    """Exclusive lock on a local SQLite store (``<db>.lock`` beside it) for steps that
    must not interleave between processes (schema set-up, creating the experiment,
    taking over a run); reentrant within a process; a no-op for tracking servers. The
    OS drops the lock when its holder dies."""
    uri = str(tracking_cfg.uri)
    if not _is_local_sqlite(uri) or uri in _held_locks:
        yield
        return
    db_path = Path(uri[len("sqlite:///") :])
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(db_path.with_name(db_path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _held_locks.add(uri)
        try:
            yield
        finally:
            _held_locks.discard(uri)
            fcntl.flock(handle, fcntl.LOCK_UN)


_held_locks: set[str] = set()


def experiment_id(client: MlflowClient, tracking_cfg: DictConfig) -> str:
    """Get or create ``tracking.experiment``; local stores keep artifacts in artifact_root."""
    name = str(tracking_cfg.experiment)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if _is_local_sqlite(str(tracking_cfg.uri)):
        location = Path(str(tracking_cfg.artifact_root)).resolve().as_uri()
    with store_lock(tracking_cfg):
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        try:
            # The kind tag makes MLflow 3's UI open the experiment on its training-runs view.
            return client.create_experiment(
                name,
                artifact_location=location,
                tags={"mlflow.experimentKind": "custom_model_development"},
            )
        except MlflowException:
            # A process on another host (or a tracking server's other client) was first.
            existing = client.get_experiment_by_name(name)
            if existing is None:  # not a race: the refusal was for another reason
                raise
            return existing.experiment_id
