"""MLflow's system metrics (``system/cpu_utilization_percentage``, memory, disk, network,
GPU when there is one) for a run: whether a run wants them, refused in one line without
psutil before any run exists.

On with ``tracking.system_metrics=true`` or MLflow's ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``;
``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` (seconds, default 10) sets how often. MLflow
samples them itself: ``mlflow.start_run(run_id=…, log_system_metrics=True)`` starts its
monitor when the run becomes the active run (``RunTracker.active``), continuing a resumed
run's steps, and ``mlflow.end_run`` stops it. These points are MLflow's monitor's to write:
a store outage can lose some of them, and that does not make the run's own record
incomplete.
"""

from __future__ import annotations

import importlib.util

from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING

from ssgan.tracking.store import TrackingError


def wanted(asked: bool) -> bool:
    """Whether this run should record system metrics; refused in one line without psutil
    (``mlflow.start_run`` would refuse with a longer message, after the run exists)."""
    on = asked or bool(MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get())
    if on and importlib.util.find_spec("psutil") is None:
        raise TrackingError(
            "system metrics (tracking.system_metrics=true or MLFLOW_ENABLE_SYSTEM_METRICS_"
            "LOGGING) need the psutil package: pip install psutil, or turn them off"
        )
    return on
