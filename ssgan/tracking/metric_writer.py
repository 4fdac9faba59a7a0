"""The background writer of a run's metric batches: the training loop never waits on
the store, and the tracker learns exactly how many points could not be written."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from mlflow.entities import Metric

from ssgan.tracking.store import TrackingWriteError


class MetricWriter:
    """Sends metric batches from one background thread, in order, each batch retried as
    one idempotent unit by ``write`` (which raises TrackingWriteError once it gives up).

    Ours, not MLflow's async logging (``log_batch(..., synchronous=False)``): that sends
    each batch once from a thread pool and only logs a failure; this one retries on the
    tracker's budget (``tracking.retry_s``) and counts every point it could not write, so
    the run can say what was lost before it is ended (never FINISHED with holes)."""

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
