"""MLflow's system metrics (``system/cpu_utilization_percentage``, memory, disk, network,
GPU when there is one) for a run, sampled by MLflow's own monitor in a background thread.

On with ``tracking.system_metrics=true`` or MLflow's ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``;
``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` (seconds, default 10) sets how often. These
points are MLflow's monitor's to write: a store outage can lose some of them, and that
does not make the run's own record incomplete.
"""

from __future__ import annotations

import importlib.util

from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

from ssgan.tracking.store import TrackingError


def wanted(asked: bool) -> bool:
    """Whether this run should record system metrics; refused in one line without psutil."""
    on = asked or bool(MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get())
    if on and importlib.util.find_spec("psutil") is None:
        raise TrackingError(
            "system metrics (tracking.system_metrics=true or MLFLOW_ENABLE_SYSTEM_METRICS_"
            "LOGGING) need the psutil package: pip install psutil, or turn them off"
        )
    return on


def start_monitor(tracking_uri: str, run_id: str, resumed: bool) -> SystemMetricsMonitor:
    """MLflow's monitor for ``run_id``, started; a resumed run continues its steps."""
    monitor = SystemMetricsMonitor(run_id, resume_logging=resumed, tracking_uri=tracking_uri)
    monitor.start()
    return monitor
