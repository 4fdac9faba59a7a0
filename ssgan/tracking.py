"""Everything that talks to MLflow. No other module imports mlflow.

Default store: ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
(MLflow 3 refuses its old plain-file store). ``tracking.uri`` or ``MLFLOW_TRACKING_URI``
point runs at a shared tracking server instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import queue
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ssgan.errors import UserError, disk_full_reason

# Store set-up notices and artifact progress bars are noise in a training terminal.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
# MLflow logs a traceback for every failed SQLite write; RunTracker retries those writes
# and reports what finally could not be written in one line.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
CONFIG_ARTIFACT = "config/config.yaml"
MODEL_ARTIFACT = "model"
# MLflow's log_batch limits (per call): keep well inside them.
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000


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
# default is 20 s); set from tracking.timeout_s by check_store.
_sqlite_busy_ms: int | None = None
# MLflow's HTTP client settings as the user's environment had them (those win over ours).
_USER_HTTP_ENV = {
    name: os.environ.get(name)
    for name in (
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    )
}


@event.listens_for(Engine, "before_cursor_execute", retval=True)
def _bounded_sqlite_wait(conn, cursor, statement, parameters, context, executemany):
    """MLflow sets ``PRAGMA busy_timeout = 20000`` on every session; bound it by
    ``tracking.timeout_s`` so a locked store is retried on our schedule, not 20 s a try."""
    if _sqlite_busy_ms is not None and statement.lstrip().lower().startswith("pragma busy_timeout"):
        statement = f"PRAGMA busy_timeout = {_sqlite_busy_ms};"
    return statement, parameters


def check_store(tracking_cfg: DictConfig) -> None:
    """Refuse a ``tracking.uri`` that cannot work, in one line, before any work starts:
    an unknown scheme, a SQLite file whose folder cannot be created or that is not a
    SQLite database, an MLflow server that does not answer within ``tracking.timeout_s``."""
    global _sqlite_busy_ms
    uri = str(tracking_cfg.uri)
    timeout = float(OmegaConf.select(tracking_cfg, "timeout_s", default=DEFAULT_TIMEOUT_S))
    if (uri, timeout) in _checked_stores:
        return
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        _check_sqlite(uri)
        _sqlite_busy_ms = max(1, int(timeout * 1000))
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
            return client.get_experiment_by_name(name).experiment_id


def get_run(tracking_cfg: DictConfig, run_id: str) -> Run:
    """The run ``run_id`` in ``tracking.uri``; one-line TrackingError when malformed or unknown."""
    run_id = str(run_id)
    if not RUN_ID_PATTERN.match(run_id):
        raise TrackingError(
            f"run_id={run_id!r} is not an MLflow run id: expected 32 lowercase hex characters "
            "(see `mlflow ui` or the id printed by ssgan.train)"
        )
    client = client_for(tracking_cfg)
    try:
        return client.get_run(run_id)
    except MlflowException as err:
        raise TrackingError(
            f"run_id={run_id} was not found in the tracking store {tracking_cfg.uri} "
            "(check tracking.uri / MLFLOW_TRACKING_URI)"
        ) from err


def download_artifacts(
    tracking_cfg: DictConfig, run_id: str, artifact_path: str, dst_dir: Path
) -> Path:
    """Copy a run's artifact (file or folder) into ``dst_dir``; return the local path."""
    client_for(tracking_cfg)
    Path(dst_dir).mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=artifact_path,
            dst_path=str(dst_dir),
            tracking_uri=str(tracking_cfg.uri),
        )
    except (MlflowException, OSError) as err:
        raise TrackingError(
            f"run {run_id} has no artifact '{artifact_path}' (was it exported? see `mlflow ui`)"
        ) from err
    return Path(local)


def has_artifact(tracking_cfg: DictConfig, run_id: str, artifact_path: str) -> bool:
    """Whether a run has a (non-empty) artifact at ``artifact_path``."""
    client = client_for(tracking_cfg)
    parent = str(Path(artifact_path).parent) if "/" in artifact_path else ""
    try:
        listing = client.list_artifacts(run_id, parent or None)
    except (MlflowException, OSError):
        return False
    return any(item.path == artifact_path for item in listing)


def metric_history(tracking_cfg: DictConfig, run_id: str, key: str) -> list[Metric]:
    """Every logged point of one metric of a run."""
    return client_for(tracking_cfg).get_metric_history(run_id, key)


def load_run_config(tracking_cfg: DictConfig, run_id: str) -> DictConfig:
    """The composed config a run was started with (its ``config/config.yaml`` artifact)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifacts(tracking_cfg, run_id, CONFIG_ARTIFACT, Path(tmp))
        return OmegaConf.load(path)


def set_run_tags(tracking_cfg: DictConfig, run_id: str, tags: dict[str, str]) -> None:
    client = client_for(tracking_cfg)
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def registered_version(
    tracking_cfg: DictConfig,
    name: str,
    run_id: str,
    tags: dict[str, str],
    artifact_path: str = MODEL_ARTIFACT,
) -> tuple[str, bool]:
    """The registry version of model ``name`` carrying all ``tags``, created (from the
    run's ``artifact_path``) when none does. Returns ``(version, created)``: calling it
    again after a failure repairs, and never registers the same thing twice."""
    client = client_for(tracking_cfg)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    query = " and ".join(
        [f"name='{name}'", *(f"tags.`{key}`='{value}'" for key, value in tags.items())]
    )
    found = client.search_model_versions(query)
    if found:
        return str(min(int(v.version) for v in found)), False
    run = client.get_run(run_id)
    source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    return str(version.version), True


def registry_aliases(tracking_cfg: DictConfig, name: str) -> dict[str, str]:
    """``{alias: registry version}`` of model ``name`` (empty if it is not registered)."""
    client = client_for(tracking_cfg)
    try:
        return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    except MlflowException:
        return {}


def set_registry_alias(tracking_cfg: DictConfig, name: str, alias: str, version: str) -> None:
    client_for(tracking_cfg).set_registered_model_alias(name, alias, version)


def git_state(start: Path | None = None) -> dict[str, str]:
    """Commit and dirtiness of the source tree the code runs from (empty if not a repo)."""
    where = str(start or Path(__file__).resolve().parent)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": commit, "ssgan.git_dirty": str(dirty).lower()}


# MLflow error codes that no retry can fix (a bad value, a deleted run): fail at once.
_PERMANENT_ERRORS = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_STATE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}


def _is_transient(err: BaseException) -> bool:
    """A locked or unreachable store may recover; a refused value will not."""
    if isinstance(err, MlflowException):
        return err.error_code not in _PERMANENT_ERRORS
    return isinstance(err, OSError) and disk_full_reason(err) is None


def _reason(err: BaseException) -> str:
    text = str(getattr(err, "message", err)) or type(err).__name__
    return text.strip().splitlines()[0][:200]


class _MetricWriter:
    """Sends metric batches from a background thread, so the training loop never waits on
    the store, each batch retried as one idempotent unit by ``write``."""

    def __init__(self, write: Callable[[list[Metric]], None]) -> None:
        self._write = write
        self._queue: queue.Queue[list[Metric] | None] = queue.Queue()
        self.error: TrackingWriteError | None = None
        self.lost = 0  # metric points that could not be written
        self._thread = threading.Thread(target=self._drain, name="ssgan-metrics", daemon=True)
        self._thread.start()

    def put(self, batch: list[Metric]) -> None:
        self._queue.put(batch)

    def _drain(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if self.error is not None:
                    self.lost += len(batch)  # the store already gave up: do not wait again
                    continue
                try:
                    self._write(batch)
                except TrackingWriteError as err:
                    self.error, self.lost = err, self.lost + len(batch)
            finally:
                self._queue.task_done()

    def join(self) -> None:
        """Wait until every queued batch is written or given up on."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


LEASE_TAG = "ssgan.lease"
DEFAULT_LEASE_S = 60.0


class RunOwnedError(TrackingError):
    """Another live job is training the run."""


def _process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot; Linux), "" if it does not
    exist: with the pid it tells a live owner from a dead one whose pid was reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def _lease_value(lease_s: float) -> str:
    return f"{_this_process()} {time.time() + lease_s:.0f}"


def refuse_if_owned(tracking_cfg: DictConfig, run: Run) -> None:
    """RunOwnedError (one line) while another live job owns ``run``."""
    owner = live_owner(run)
    if owner is not None:
        raise RunOwnedError(
            f"run {run.info.run_id} is being trained by another job ({owner}): one job "
            "trains a run at a time; wait for it to end or stop it (a job that "
            "died on another host frees the run after tracking.lease_s="
            f"{OmegaConf.select(tracking_cfg, 'lease_s', default=DEFAULT_LEASE_S):g} s)"
        )


def live_owner(run: Run) -> str | None:
    """Who holds a RUNNING run's lease, if that job is alive; None when it is free.

    The lease tag names host, pid and process start time, and an expiry that the owner's
    heartbeat keeps pushing forward. On the owner's host the process itself is checked,
    so a ``kill -9``ed job frees its run at once; from another host the run is free once
    the lease expired (at most ``tracking.lease_s`` after the owner died)."""
    value = run.data.tags.get(LEASE_TAG, "")
    if run.info.status != "RUNNING" or " " not in value:
        return None
    owner, expires = value.rsplit(" ", 1)
    host, pid, started = (owner.split(":") + ["", "", ""])[:3]
    if host == socket.gethostname():
        alive = pid.isdigit() and started != "" and _process_start(int(pid)) == started
    else:
        alive = float(expires) > time.time()
    return f"pid {pid} on {host}" if alive else None


class _Heartbeat:
    """Renews a run's lease every third of ``lease_s`` from a background thread."""

    def __init__(self, client: MlflowClient, run_id: str, lease_s: float) -> None:
        self._stop = threading.Event()

        def beat() -> None:
            while not self._stop.wait(lease_s / 3):
                with contextlib.suppress(Exception):  # a missed beat only shortens the lease
                    client.set_tag(run_id, LEASE_TAG, _lease_value(lease_s))

        self._thread = threading.Thread(target=beat, name="ssgan-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


class RunTracker:
    """One training run in MLflow: params, tags, batched background metrics, artifacts,
    status.

    The record is complete or the run says otherwise: every write is retried for
    ``tracking.retry_s`` seconds; a write the store still refuses raises
    :class:`TrackingWriteError`, and the run is never marked FINISHED with holes. Each
    metric point gets its timestamp once, so a retry of a batch whose first attempt did
    reach the store writes the same rows again, which MLflow deduplicates (its metric key
    includes the timestamp): no point is logged twice. On resume, steps already logged
    for a metric are not logged again.
    """

    def __init__(self, tracking_cfg: DictConfig, run: Run) -> None:
        self.tracking_cfg = tracking_cfg
        self.client = client_for(tracking_cfg)
        self.run_id = run.info.run_id
        self.artifact_uri = run.info.artifact_uri
        self.retry_s = float(OmegaConf.select(tracking_cfg, "retry_s", default=DEFAULT_RETRY_S))
        self._last_step: dict[str, int] = {}
        self._metrics = _MetricWriter(self._write_metrics)
        self.lease_s = float(OmegaConf.select(tracking_cfg, "lease_s", default=DEFAULT_LEASE_S))
        self._heartbeat: _Heartbeat | None = None
        self._synced: dict[Path, tuple[int, int]] = {}

    @classmethod
    def start(
        cls, cfg: DictConfig, params: dict[str, Any], tags: dict[str, str], run_name: str
    ) -> RunTracker:
        client = client_for(cfg.tracking)
        exp_id = experiment_id(client, cfg.tracking)
        lease_s = float(OmegaConf.select(cfg.tracking, "lease_s", default=DEFAULT_LEASE_S))
        tags = {**tags, LEASE_TAG: _lease_value(lease_s)}
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
        tracker = cls(cfg.tracking, run)
        tracker._heartbeat = _Heartbeat(tracker.client, tracker.run_id, tracker.lease_s)
        tracker._log_params(params)
        return tracker

    @classmethod
    def resume(cls, tracking_cfg: DictConfig, run_id: str) -> RunTracker:
        """Take over ``run_id``: refused (RunOwnedError) while another live job owns it.
        On a local store the check and the take-over happen under the store's lock."""
        with store_lock(tracking_cfg):
            run = get_run(tracking_cfg, run_id)
            refuse_if_owned(tracking_cfg, run)
            tracker = cls(tracking_cfg, run)
            client = tracker.client
            tracker._retrying(
                "take the run's lease", client.set_tag, run_id, LEASE_TAG,
                _lease_value(tracker.lease_s),
            )  # fmt: skip
            tracker._retrying("set the run RUNNING", client.update_run, run_id, status="RUNNING")
        tracker._heartbeat = _Heartbeat(client, run_id, tracker.lease_s)
        for key in run.data.metrics:
            history = tracker._retrying(f"read {key}", client.get_metric_history, run_id, key)
            tracker._last_step[key] = max(m.step for m in history)
        return tracker

    # -- retried writes ------------------------------------------------------------------

    def _retrying(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call(*args, **kwargs)``, retried with backoff for ``tracking.retry_s``."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.1
        while True:
            try:
                return call(*args, **kwargs)
            except Exception as err:  # classified below: only store outages are retried
                if not _is_transient(err):
                    raise TrackingWriteError(
                        f"the tracking store {self.tracking_cfg.uri} refused to {what} "
                        f"({_reason(err)})"
                    ) from err
                if time.monotonic() + delay > deadline:
                    raise TrackingWriteError(
                        f"could not {what} in the tracking store {self.tracking_cfg.uri} "
                        f"within tracking.retry_s={self.retry_s:g} ({_reason(err)})"
                    ) from err
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _write_metrics(self, batch: list[Metric]) -> None:
        self._retrying("log metrics", self.client.log_batch, self.run_id, metrics=batch)

    def _log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, "None" if v is None else str(v)) for k, v in params.items()]
        for i in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            chunk = items[i : i + _MAX_PARAMS_PER_BATCH]
            self._retrying("log params", self.client.log_batch, self.run_id, params=chunk)

    def set_tags(self, tags: dict[str, str]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        self._retrying("set tags", self.client.log_batch, self.run_id, tags=items)

    def delete_tag(self, key: str) -> None:
        """Remove a tag if the run has it (e.g. a stale error of an earlier attempt)."""
        run = self._retrying("read the run", self.client.get_run, self.run_id)
        if key in run.data.tags:
            self._retrying(f"delete tag {key}", self.client.delete_tag, self.run_id, key)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Queue metrics for ``step``; skip any (key, step) a previous attempt already
        logged. Raises TrackingWriteError once the store has refused earlier metrics."""
        self._raise_lost_metrics()
        now = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), now, int(step))
            for key, value in metrics.items()
            if step > self._last_step.get(key, -1)
        ]
        for metric in batch:
            self._last_step[metric.key] = int(step)
        for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            self._metrics.put(batch[i : i + _MAX_METRICS_PER_BATCH])

    def _raise_lost_metrics(self) -> None:
        error = self._metrics.error
        if error is not None:
            raise TrackingWriteError(
                f"run {self.run_id}: {self._metrics.lost} metric points were not recorded: {error}"
            )

    def log_artifact(self, local_path: Path, artifact_path: str | None = None) -> None:
        self._retrying(
            "store an artifact", self.client.log_artifact, self.run_id, str(local_path),
            artifact_path,
        )  # fmt: skip

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        self._retrying(
            "store artifacts", self.client.log_artifacts, self.run_id, str(local_dir),
            artifact_path,
        )  # fmt: skip

    def sync_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        """Upload the files of ``local_dir`` that are new or changed since the last call:
        a checkpoint save adds a few files, and the folder is not sent again each time.
        (Files deleted locally stay in the run: MLflow's client cannot delete artifacts.)"""
        for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            stat = path.stat()
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._synced.get(path) == signature:
                continue
            folder = path.parent.relative_to(local_dir).as_posix()
            self.log_artifact(path, artifact_path if folder == "." else f"{artifact_path}/{folder}")
            self._synced[path] = signature

    def log_text(self, text: str, artifact_file: str) -> None:
        self._retrying("store a text", self.client.log_text, self.run_id, text, artifact_file)

    def log_array(self, array: np.ndarray, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            np.save(path, array)
            self.log_artifact(path, str(Path(artifact_file).parent))

    def log_image(self, image: np.ndarray, artifact_file: str) -> None:
        self._retrying(
            "store an image", self.client.log_image, self.run_id, image,
            artifact_file=artifact_file,
        )  # fmt: skip

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._retrying("store a figure", self.client.log_figure, self.run_id, figure, artifact_file)

    def local_artifact_dir(self, artifact_path: str) -> Path | None:
        """The local folder of an artifact path when the store keeps artifacts on disk."""
        uri = self.artifact_uri
        if uri.startswith("file://"):
            return Path(uri[len("file://") :]) / artifact_path
        if uri.startswith("/"):
            return Path(uri) / artifact_path
        return None

    def flush(self) -> None:
        """Wait until every queued metric is in the store; raise if any could not be."""
        self._metrics.join()
        self._raise_lost_metrics()

    def finish(self, status: str, error: str | None = None) -> None:
        """Mark the run FINISHED, FAILED (with the error as a tag) or KILLED.

        FINISHED only when every metric reached the store (else TrackingWriteError, and
        the caller marks the run FAILED). A FINISHED run loses the error tag an earlier
        failed attempt left. Raises TrackingWriteError when the status itself cannot be
        written: the store then still says RUNNING, never FINISHED.
        """
        if self._heartbeat is not None:
            self._heartbeat.stop()
        try:
            self._metrics.join()
            if status == "FINISHED":
                self._raise_lost_metrics()
                self.delete_tag("ssgan.error")
            if error:
                self.set_tags({"ssgan.error": error[:5000]})
            self._retrying(
                f"mark the run {status}", self.client.set_terminated, self.run_id, status=status
            )
        finally:
            if status != "FINISHED" or self._metrics.error is None:
                self._metrics.close()


class FollowerTracker:
    """A non-chief worker's handle on its job's run: it knows the run and records
    nothing (the chief records the run, see ssgan.distribute.WorkerRole)."""

    def __init__(self, tracking_cfg: DictConfig, run: Run) -> None:
        self.tracking_cfg = tracking_cfg
        self.run_id = run.info.run_id
        self.artifact_uri = run.info.artifact_uri

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Nothing: the chief logs the same values."""

    def log_image(self, image: np.ndarray, artifact_file: str) -> None:
        """Nothing: the chief logs the samples."""

    def flush(self) -> None:
        """Nothing is queued."""

    def finish(self, status: str, error: str | None = None) -> None:
        """Nothing: the chief records how the run ended."""

    local_artifact_dir = RunTracker.local_artifact_dir


def search_runs(tracking_cfg: DictConfig, filter_string: str = "") -> Iterable[Run]:
    """Runs of ``tracking.experiment`` matching an MLflow filter string."""
    client = client_for(tracking_cfg)
    experiment = client.get_experiment_by_name(str(tracking_cfg.experiment))
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], filter_string=filter_string)


def runs_dataframe(tracking_cfg: DictConfig, filter_string: str = "") -> Any:
    """``mlflow.search_runs`` as a pandas DataFrame (for studies and tables)."""
    client_for(tracking_cfg)
    return mlflow.search_runs(
        experiment_names=[str(tracking_cfg.experiment)], filter_string=filter_string
    )


def environment_tags() -> dict[str, str]:
    import tensorflow as tf

    return {
        "ssgan.tensorflow_version": tf.__version__,
        "ssgan.mlflow_version": mlflow.__version__,
        "ssgan.host_cpus": str(os.cpu_count()),
    }


# -- sweeps: a parent run and its children ------------------------------------------------

PARENT_TAG = "mlflow.parentRunId"


def create_run(
    tracking_cfg: DictConfig, run_name: str, tags: dict[str, str], params: dict[str, Any]
) -> RunTracker:
    """A run that is not a training run (a sweep's parent), in ``tracking.experiment``."""
    client = client_for(tracking_cfg)
    run = client.create_run(experiment_id(client, tracking_cfg), run_name=run_name, tags=tags)
    tracker = RunTracker(tracking_cfg, run)
    tracker._log_params(params)
    return tracker


def reopen_run(tracking_cfg: DictConfig, run_id: str) -> RunTracker:
    """An existing run marked RUNNING again (a sweep continued after a kill)."""
    tracker = RunTracker(tracking_cfg, get_run(tracking_cfg, run_id))
    tracker.client.update_run(run_id, status="RUNNING")
    return tracker


def child_runs(tracking_cfg: DictConfig, parent_id: str) -> list[Run]:
    """Every run whose ``mlflow.parentRunId`` is ``parent_id``, oldest first."""
    parent = get_run(tracking_cfg, parent_id)
    client = client_for(tracking_cfg)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.{PARENT_TAG} = '{parent_id}'",
        max_results=50_000,
    )
    return sorted(runs, key=lambda r: r.info.start_time or 0)


def newest_parent_run(tracking_cfg: DictConfig, kind: str | None = None) -> Run | None:
    """The newest sweep parent (tag ``ssgan.sweep_kind``) in ``tracking.experiment``."""
    client = client_for(tracking_cfg)
    experiment = client.get_experiment_by_name(str(tracking_cfg.experiment))
    if experiment is None:
        return None
    where = f"tags.`ssgan.sweep_kind` = '{kind}'" if kind else "tags.`ssgan.sweep_kind` != ''"
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=where, order_by=["attributes.start_time DESC"]
    )
    return runs[0] if runs else None


def log_artifacts_to(tracking_cfg: DictConfig, run_id: str, local_dir: Path, path: str) -> None:
    """Add a folder to an existing run's artifacts without touching its status."""
    client_for(tracking_cfg).log_artifacts(run_id, str(local_dir), path)
