"""Tracking stores: check a ``tracking.uri`` before work starts, and a
:class:`TrackingStore` that opens it safely from many processes at once, locks it and
gets or creates the experiment."""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow.entities import Experiment
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExecutionContext

from ssgan.config import TrackingConfig
from ssgan.config_checks import check_tracking_uri
from ssgan.errors import ConfigError, UserError, disk_full_reason, first_line
from ssgan.files import exclusive_lock


class TrackingError(UserError):
    """A run, store or artifact that cannot be used."""


class TrackingWriteError(TrackingError):
    """The store refused a write for longer than ``tracking.retry_s``: the run's record
    would have holes, so the run must not end FINISHED."""


class RunDeletedError(TrackingWriteError):
    """The run was deleted while it trained: nothing more can be written to it."""


def _is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


DEFAULT_RETRY_S = 120.0
_SQLITE_HEADER = b"SQLite format 3\x00"
# The statement MLflow opens every SQLite session with (mlflow/store/db/utils.py); MLflow
# has no setting for it, so on a store's file it is rewritten (bound_busy_wait).
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


# tracking.timeout_s in ms for each SQLite file (the path its URI names) whose MLflow
# sessions are bounded. MLflow keeps one engine per URI in a process: the last store
# opened on a file sets its value.
_BUSY_MS: dict[str, int] = {}
_BUSY_LOCK = threading.Lock()


def _rewrite_busy_timeout(
    conn: Connection,
    cursor: object,
    statement: str,
    parameters: object,
    context: ExecutionContext | None,
    executemany: bool,
) -> tuple[str, object]:
    """SQLAlchemy's hook before every statement of every engine: MLflow's ``PRAGMA
    busy_timeout = 20000`` on a bounded store's file becomes that store's bound; any other
    statement, and every other database, is left as it is."""
    ms = _BUSY_MS.get(conn.engine.url.database or "")
    if ms is not None and MLFLOW_BUSY_PRAGMA.match(statement):
        statement = f"PRAGMA busy_timeout = {ms};"
    return statement, parameters


def bound_busy_wait(db_path: str, busy_ms: int) -> None:
    """MLflow's sessions on the SQLite file ``db_path`` wait at most ``busy_ms``
    (``tracking.timeout_s``) for a lock, so a locked store is retried on our schedule, not
    20 s a try. Neither MLflow nor SQLAlchemy offers this: MLflow runs ``PRAGMA
    busy_timeout = 20000`` at the start of every session, after the connection is made,
    so the sqlite driver's own ``?timeout=`` (connect argument) is overridden, and no
    MLflow setting changes it. The hook is SQLAlchemy's public event API on all engines
    (``event.listen(Engine, …)``), matching the store's file: no private attribute of
    MLflow's client is needed to find its engines."""
    with _BUSY_LOCK:
        if not event.contains(Engine, "before_cursor_execute", _rewrite_busy_timeout):
            event.listen(Engine, "before_cursor_execute", _rewrite_busy_timeout, retval=True)
        _BUSY_MS[db_path] = busy_ms


def check_store(settings: TrackingConfig) -> None:
    """Refuse a ``tracking.uri`` that cannot work, in one line, before any work starts:
    an unknown scheme or a PostgreSQL store without its driver (:func:`check_tracking_uri`,
    which the commands also run before Hydra starts), a SQLite file whose folder cannot be
    created or that is not a SQLite database, an MLflow server that does not answer within
    ``tracking.timeout_s``."""
    uri, timeout = settings.uri, settings.timeout_s
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        _check_sqlite(uri)
    elif scheme in ("http", "https"):
        _bound_http_client(timeout)
        _check_server(uri, timeout)
    else:
        try:
            check_tracking_uri(uri)
        except ConfigError as err:
            raise TrackingError(str(err)) from err


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
    ``tracking.timeout_s``, and RunTracker does the retrying (``tracking.retry_s``).

    Written into the process's environment because that is MLflow's only knob: its REST
    store calls ``call_endpoint`` without a retry count or timeout, so ``http_request``
    reads these variables on every request (mlflow/utils/rest_utils.py); MlflowClient
    takes none per client. A value the user set wins, and the child processes of a job
    inherit ours, which is what they need too."""
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


class TrackingStore:
    """The store ``tracking.uri`` names, for one command or job: checked once, one
    MlflowClient (given its tracking and registry URI), its lock and its experiment.
    Build it once from the tracking section and pass it down. Nothing is read or created
    until it is used (:meth:`open` checks it at once); the first use opens the store."""

    def __init__(self, settings: TrackingConfig) -> None:
        self.settings = settings
        self.uri = settings.uri
        self._checked = False
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._lock_depth = 0  # how many lock() blocks of this store are open
        self._mutex = threading.RLock()

    @property
    def experiment(self) -> str:
        return self.settings.experiment

    @property
    def artifact_root(self) -> str:
        return self.settings.artifact_root

    @property
    def is_local(self) -> bool:
        """Whether this is a SQLite file on this machine (not a tracking server)."""
        return _is_local_sqlite(self.uri)

    @classmethod
    def open(cls, settings: TrackingConfig) -> TrackingStore:
        """The store, checked now (:meth:`check`): before any work starts."""
        store = cls(settings)
        store.check()
        return store

    def check(self) -> None:
        """:func:`check_store`, once for this store."""
        if not self._checked:
            check_store(self.settings)
            self._checked = True

    @property
    def client(self) -> MlflowClient:
        """The store's client; a local SQLite store is created (or migrated) on first use
        under the lock, so many processes may start on a fresh store at once."""
        with self._mutex:
            if self._client is None:
                self._client = self._open()
            return self._client

    def _open(self) -> MlflowClient:
        self.check()
        if not self.is_local:
            return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        with self.lock():
            # Opening a store creates or migrates its schema (MLflow then caches the store
            # in the process); two processes doing it at once corrupt a fresh database.
            db = Path(self.uri[len("sqlite:///") :])
            fresh = not db.exists()
            try:
                busy_ms = max(1, int(self.settings.timeout_s * 1000))
                bound_busy_wait(self.uri[len("sqlite:///") :], busy_ms)  # before its first session
                client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
                client.search_registered_models(max_results=1)
            except Exception as err:  # any failure to open it: one line, not SQLAlchemy's
                raise self._unopenable(db, fresh, err) from err
        return client

    def _unopenable(self, db: Path, fresh: bool, err: Exception) -> TrackingError:
        """Why the SQLite store could not be created or opened. A store this process was
        creating (under the lock, so no one else was) is removed: half a schema would
        make every later run fail on it."""
        reason = disk_full_reason(err) or first_line(err)[:200]
        if not fresh:
            return TrackingError(f"cannot open the tracking store {self.uri} ({reason})")
        for partial in (db, db.with_name(db.name + "-journal"), db.with_name(db.name + "-wal")):
            partial.unlink(missing_ok=True)
        return TrackingError(
            f"cannot create the tracking store {self.uri} ({reason}); nothing is left of it: "
            "free space or point tracking.uri elsewhere, then run the command again"
        )

    def use_in_fluent_api(self) -> None:
        """Point MLflow's process-wide tracking and registry URI at this store. Some MLflow
        calls read those instead of a client's: ``mlflow.search_runs``, ``Model.log``, and
        resolving ``models:/…`` and ``runs:/<id>/model`` URIs. Called right before each such
        call, so that two stores in one process each reach their own."""
        self.client  # noqa: B018  (checked and opened first: created under the lock)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock on a local SQLite store (``<db>.lock`` beside it) for steps that
        must not interleave between processes (schema set-up, creating the experiment,
        taking over a run); reentrant within this store; a no-op for tracking servers. The
        OS drops the lock when its holder dies."""
        if not self.is_local:
            yield
            return
        with self._mutex, contextlib.ExitStack() as held:
            if self._lock_depth == 0:
                db_path = Path(self.uri[len("sqlite:///") :])
                db_path.parent.mkdir(parents=True, exist_ok=True)
                held.enter_context(exclusive_lock(db_path.with_name(db_path.name + ".lock")))
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1

    def find_experiment_id(self) -> str | None:
        """The id of ``tracking.experiment``, None while it does not exist."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            self._experiment_id = found.experiment_id if found is not None else None
        return self._experiment_id

    def experiment_id(self) -> str:
        """Get or create ``tracking.experiment``; local stores keep its artifacts in
        ``tracking.artifact_root``."""
        if self._experiment_id is None:
            self._experiment_id = self._get_or_create_experiment()
        return self._experiment_id

    def _active(self, experiment: Experiment) -> str:
        """The id of ``experiment``; refused in one line while it is deleted (MLflow keeps
        a deleted experiment's name, and refuses every new run in it)."""
        if experiment.lifecycle_stage != "deleted":
            return str(experiment.experiment_id)
        raise TrackingError(
            f"experiment '{experiment.name}' is deleted in the tracking store {self.uri}: "
            f"restore it (mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}) or name another with tracking.experiment=NAME"
        )

    def _artifact_location(self) -> str | None:
        """Where a new experiment keeps its artifacts: ``tracking.artifact_root`` for a
        database store (a folder, or a URI such as s3://…); a server chooses its own."""
        if self.uri.startswith(("http://", "https://")):
            return None
        root = self.artifact_root
        return root if "://" in root else Path(root).resolve().as_uri()

    def _get_or_create_experiment(self) -> str:
        client, name = self.client, self.experiment
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return self._active(existing)
        location = self._artifact_location()
        with self.lock():
            existing = client.get_experiment_by_name(name)
            if existing is not None:
                return self._active(existing)
            try:
                # The kind tag makes MLflow 3's UI open the experiment on its training-runs
                # view.
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
