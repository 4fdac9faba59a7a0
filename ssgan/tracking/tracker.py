"""Writing one run's record: params, tags, batched background metrics, artifacts, status.

On MLflow's own mechanisms where they give the same guarantees: the run is MLflow's
active run while it trains (``mlflow.start_run(run_id=…)``, ``MLFLOW_RUN_ID``, nesting),
its system metrics are MLflow's monitor's, ``log_batch`` splits params. Ours, and why
(docs/tracking.md, "What the tracker keeps of its own"): the status (never FINISHED
with holes: MLflow's ``end_run`` writes one unconditionally), the retry budget
(``tracking.retry_s``: MLflow retries HTTP 7 times with growing backoff, and a locked
SQLite store only by waiting 20 s on it), and the metric writer (MLflow's async logging
tries a batch once and only logs a failure: we must know which points were lost).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.entities import Metric, Param, Run, RunTag

from ssgan.tracking.datasets import Split, dataset_inputs
from ssgan.tracking.lease import Heartbeat, lease_value, refuse_if_owned, release_lease
from ssgan.tracking.metric_writer import MetricWriter
from ssgan.tracking.mlflow_model import log_pyfunc_model
from ssgan.tracking.provenance import run_context_tags
from ssgan.tracking.run_context import (
    PARENT_RUN_TAG,
    enclosing_run,
    end_fluent_run,
    start_fluent_run,
)
from ssgan.tracking.runs import get_run
from ssgan.tracking.store import RunDeletedError, TrackingStore, TrackingWriteError
from ssgan.tracking.store_errors import is_transient, refusal_reason
from ssgan.tracking.system_metrics import wanted as system_metrics_wanted
from ssgan.tracking.tags import CHECKPOINT_STEP_TAG, ERROR_TAG, LEASE_TAG


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

    def __init__(self, store: TrackingStore, run: Run) -> None:
        self.store = store
        self.client = store.client
        self.run_id = run.info.run_id
        self.artifact_uri = run.info.artifact_uri
        self.retry_s = store.settings.retry_s
        self._last_step: dict[str, int] = {}
        self._metrics = MetricWriter(self._write_metrics)
        self.lease_s = store.settings.lease_s
        self._heartbeat: Heartbeat | None = None
        self._synced: dict[Path, tuple[int, int]] = {}
        self.system_metrics = False  # MLflow's monitor, started with the active run
        self._ended: str | None = None  # the status finish() wrote

    @classmethod
    def start(
        cls,
        store: TrackingStore,
        params: dict[str, Any],
        tags: dict[str, str],
        run_name: str,
        run_id: str | None = None,
    ) -> RunTracker:
        """A new training run in ``tracking.experiment``, its lease taken; nested under
        MLflow's active run in this thread when there is one in this store. With ``run_id``
        (what ``MLFLOW_RUN_ID`` names): that existing run, made elsewhere and never trained
        (``mlflow run`` makes one), records this training instead of a new run."""
        system_metrics = system_metrics_wanted(store.settings.system_metrics)  # before a run
        tags = {**tags, LEASE_TAG: lease_value(store.settings.lease_s)}
        if run_id is not None:
            tracker = cls._adopt(store, run_id, tags)
        else:
            parent = enclosing_run(store)
            if parent is not None:
                tags.setdefault(PARENT_RUN_TAG, parent)
            tags = {**run_context_tags(), **tags}
            run = store.client.create_run(store.experiment_id(), run_name=run_name, tags=tags)
            tracker = cls(store, run)
        tracker._heartbeat = Heartbeat(tracker.client, tracker.run_id, tracker.lease_s)
        tracker._log_params(params)
        tracker.system_metrics = system_metrics
        return tracker

    @classmethod
    def _adopt(cls, store: TrackingStore, run_id: str, tags: dict[str, str]) -> RunTracker:
        """``run_id`` taken over to record a new training (under the store's lock, like a
        resume); the source tags its maker set (``mlflow run``'s project, its commit) stay."""
        with store.lock():
            run = get_run(store, run_id)
            refuse_if_owned(store.settings.lease_s, run)
            tracker = cls(store, run)
            context = {k: v for k, v in run_context_tags().items() if k not in run.data.tags}
            tracker.set_tags({**context, **tags})
            tracker._retrying(
                "set the run RUNNING", tracker.client.update_run, run_id, status="RUNNING"
            )
        return tracker

    @classmethod
    def resume(cls, store: TrackingStore, run_id: str) -> RunTracker:
        """Take over ``run_id``: refused (RunOwnedError) while another live job owns it.
        On a local store the check and the take-over happen under the store's lock."""
        system_metrics = system_metrics_wanted(store.settings.system_metrics)
        with store.lock():
            run = get_run(store, run_id)
            refuse_if_owned(store.settings.lease_s, run)
            tracker = cls(store, run)
            client = tracker.client
            tracker._retrying(
                "take the run's lease", client.set_tag, run_id, LEASE_TAG,
                lease_value(tracker.lease_s),
            )  # fmt: skip
            tracker._retrying("set the run RUNNING", client.update_run, run_id, status="RUNNING")
        tracker._heartbeat = Heartbeat(client, run_id, tracker.lease_s)
        tracker.system_metrics = system_metrics
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
                if not is_transient(err):
                    if self._deleted():
                        raise RunDeletedError(
                            f"run {self.run_id} was deleted from the tracking store while it "
                            f"trained: it stops here; restore it (mlflow runs restore --run-id "
                            f"{self.run_id}), then resume={self.run_id} continues it from its "
                            "last checkpoint"
                        ) from err
                    why = refusal_reason(err)
                    raise TrackingWriteError(
                        f"the tracking store {self.store.uri} refused to {what} ({why})"
                    ) from err
                if time.monotonic() + delay > deadline:
                    raise TrackingWriteError(
                        f"could not {what} in the tracking store {self.store.uri} "
                        f"within tracking.retry_s={self.retry_s:g} ({refusal_reason(err)})"
                    ) from err
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _deleted(self) -> bool:
        """Whether the run was deleted (what a refused write to it most often means)."""
        try:
            return self.client.get_run(self.run_id).info.lifecycle_stage == "deleted"
        except Exception:  # the store cannot even be read: not a deleted run
            return False

    def _write_metrics(self, batch: list[Metric]) -> None:
        self._retrying("log metrics", self.client.log_batch, self.run_id, metrics=batch)

    def _log_params(self, params: dict[str, Any]) -> None:
        """All params in one call: MlflowClient.log_batch splits them into MLflow's
        per-request limit (100) itself, and a retry of the whole call is safe (a param
        logged again with the same value is accepted)."""
        items = [Param(k, "None" if v is None else str(v)) for k, v in params.items()]
        self._retrying("log params", self.client.log_batch, self.run_id, params=items)

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
        if batch:  # one step's points: the writer's unit of retry and of loss counting
            self._metrics.put(batch)  # (log_batch splits it at MLflow's limit if need be)

    def _raise_lost_metrics(self) -> None:
        error = self._metrics.error
        if isinstance(error, RunDeletedError):
            raise RunDeletedError(str(error))  # what to do is the same for every write
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

    def log_datasets(self, fingerprint: str, splits: dict[str, Split]) -> None:
        """Record the run's data as MLflow datasets, one per split (see tracking.datasets)."""
        inputs = dataset_inputs(fingerprint, splits)
        try:
            self._retrying("record the datasets", self.client.log_inputs, self.run_id, inputs)
        except TrackingWriteError as err:
            if err.__cause__ is not None and is_transient(err.__cause__):
                raise  # the store stayed unreachable for tracking.retry_s: do not wait again
            # MLflow adds a dataset row after checking that none exists, so runs recording
            # the same new data at once can all pass the check: the unique key then refuses
            # all but the first, and a refused write is rolled back whole. The first wrote
            # every row these runs share (same fingerprint, same splits) in one transaction,
            # so logging once more finds the rows and only links the run to them
            # (log_inputs reuses rows and links that exist). Whatever else was refused is
            # refused again, and the run cannot end FINISHED.
            self._retrying("record the datasets", self.client.log_inputs, self.run_id, inputs)

    def log_model(self, saved_model_dir: Path, example_images: Sequence[bytes], step: int) -> str:
        """Log the exported SavedModel as the run's MLflow Model (pyfunc) with the run's
        metrics at ``step`` linked to it; return its ``models:/m-…`` URI."""
        self.flush()  # the metrics to link must be in the store first
        return log_pyfunc_model(
            self.store, self.run_id, saved_model_dir, example_images, step, self._retrying
        )

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

    def log_checkpoint(self, step: int) -> None:
        """Record that the run has a complete checkpoint at ``step`` (resume reads it)."""
        self.set_tags({CHECKPOINT_STEP_TAG: str(step)})

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """This run as MLflow's active run in this thread while the block runs (training):
        ``mlflow.active_run()`` is this run and a callback's ``mlflow.log_metric`` lands in
        it. The status stays :meth:`finish`'s: leaving the block ends the fluent run with
        the status finish wrote, or RUNNING if none: never MLflow's default FINISHED. With
        system metrics on, MLflow's monitor runs meanwhile (``log_system_metrics=True``;
        on a resumed run it continues the ``system/*`` steps)."""
        self.store.use_in_fluent_api()  # the fluent API reaches the store by MLflow's URI
        self._retrying(
            "make it MLflow's active run", start_fluent_run, self.run_id, self.system_metrics
        )
        try:
            yield
        finally:
            self.store.use_in_fluent_api()
            end_fluent_run(self.run_id, self._ended or "RUNNING")

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
                self.delete_tag(ERROR_TAG)
            if error:
                self.set_tags({ERROR_TAG: error[:5000]})
            self._retrying(
                f"mark the run {status}", self.client.set_terminated, self.run_id, status=status
            )
            self._ended = status
            release_lease(self.client, self.run_id)  # a run that ended has no owner
        finally:
            if status != "FINISHED" or self._metrics.error is None:
                self._metrics.close()


class FollowerTracker:
    """A non-chief worker's handle on its job's run: it knows the run and records
    nothing (the chief records the run, see ssgan.training.distribute.WorkerRole)."""

    def __init__(self, store: TrackingStore, run: Run) -> None:
        self.store = store
        self.run_id = run.info.run_id
        self.artifact_uri = run.info.artifact_uri

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Nothing: the chief logs the same values."""

    def log_image(self, image: np.ndarray, artifact_file: str) -> None:
        """Nothing: the chief logs the samples."""

    def flush(self) -> None:
        """Nothing is queued."""

    def log_checkpoint(self, step: int) -> None:
        """Nothing: the chief records the run's checkpoints."""

    def active(self) -> contextlib.AbstractContextManager[None]:
        """Nothing: the chief's process has the active run (it records; this one does not)."""
        return contextlib.nullcontext()

    def finish(self, status: str, error: str | None = None) -> None:
        """Nothing: the chief records how the run ended."""

    local_artifact_dir = RunTracker.local_artifact_dir


def create_run(
    store: TrackingStore, run_name: str, tags: dict[str, str], params: dict[str, Any]
) -> RunTracker:
    """A run that is not a training run (a sweep's parent), in ``tracking.experiment``."""
    tags = {**run_context_tags(), **tags}
    run = store.client.create_run(store.experiment_id(), run_name=run_name, tags=tags)
    tracker = RunTracker(store, run)
    tracker._log_params(params)
    return tracker


def reopen_run(store: TrackingStore, run_id: str) -> RunTracker:
    """An existing run marked RUNNING again (a sweep continued after a kill)."""
    tracker = RunTracker(store, get_run(store, run_id))
    tracker.client.update_run(run_id, status="RUNNING")
    return tracker
