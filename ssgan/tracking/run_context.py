"""MLflow's run context: the run a job trains is MLflow's active run in the job's process
(``mlflow.active_run()``, the fluent ``mlflow.log_*`` calls), and ``MLFLOW_RUN_ID`` names
the run a job records into, as for MLflow's own ``mlflow.start_run``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import mlflow
from mlflow.environment_variables import MLFLOW_RUN_ID, MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from ssgan.tracking.store import TrackingStore

PARENT_RUN_TAG = MLFLOW_PARENT_RUN_ID


def run_id_from_environment() -> str | None:
    """The run ``MLFLOW_RUN_ID`` names, if it is set (``mlflow run`` sets it for the run it
    made; MLflow unsets it when that run ends, so a later job in the process starts anew)."""
    return MLFLOW_RUN_ID.get() or None


def enclosing_run(store: TrackingStore) -> str | None:
    """The id of MLflow's active run in this thread when it is in ``store``: a user's own
    run around ``train()``, which a new run is then nested under."""
    active = mlflow.active_run()
    if active is None:
        return None
    try:
        store.client.get_run(active.info.run_id)
    except Exception:  # a run of another store: nothing to nest under here
        return None
    return str(active.info.run_id)


def start_fluent_run(run_id: str, system_metrics: bool) -> None:
    """Make ``run_id`` (made or reopened by the tracker's client) MLflow's active run, nested
    in an active run of the caller's if there is one; ``system_metrics`` starts MLflow's
    monitor for it (continuing its ``system/*`` steps when the run has some). The caller
    has pointed MLflow's process-wide URI at the run's store."""
    mlflow.start_run(
        run_id=run_id,
        nested=mlflow.active_run() is not None,
        log_system_metrics=system_metrics,
    )


def end_fluent_run(run_id: str, status: str) -> None:
    """End the fluent run ``run_id`` if it is the active one. ``mlflow.end_run`` writes a
    status: the caller passes the one it already wrote (or RUNNING, what the store still
    shows when it wrote none), never MLflow's default FINISHED. Best effort: the run's
    status was the tracker's to write, with its retries; this only leaves the context.

    With a tracking server MLflow prints the run's link each time a status is written: the
    tracker's own write printed it, so this second write is told not to (MLflow's
    ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT``)."""
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        with contextlib.suppress(Exception), _link_not_printed():
            mlflow.end_run(status)


@contextlib.contextmanager
def _link_not_printed() -> Iterator[None]:
    name = MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name
    before = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
