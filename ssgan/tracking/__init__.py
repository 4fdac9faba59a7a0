"""Everything that talks to MLflow: no module outside this package imports mlflow.

``store`` checks and opens tracking stores, ``runs`` reads runs and their artifacts,
``lease`` keeps one live job per run, ``tracker`` writes a run's record, ``registry``
names models, ``provenance`` records where a run's code came from.

Default store: MLflow 3's own, ``sqlite:///mlflow.db``, with artifacts under ``mlruns/``
(plain-file stores, which MLflow 3 deprecates, are refused). ``tracking.uri`` or
``MLFLOW_TRACKING_URI`` point runs at a tracking server or a PostgreSQL database instead.
"""

import logging
import os

# Store set-up notices and artifact progress bars are noise in a training terminal.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
import mlflow  # noqa: F401  (importing it configures its loggers: ours must come after)

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
# MLflow logs a traceback for every failed SQLite write; RunTracker retries those writes
# and reports what finally could not be written in one line.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
