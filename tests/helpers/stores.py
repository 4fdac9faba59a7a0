"""Private MLflow SQLite stores for tests, each starting as a copy of one fresh store.

MLflow creates a new SQLite store by running every schema migration it ships, about 2 s
on the 2-core machine, and most tests open a store of their own: the suite paid that a
few hundred times. The first store a test process asks for is created by MLflow itself;
every later one starts as a byte copy of it (schema, migration stamp and MLflow's
``Default`` experiment), so the code under test opens an existing store exactly as it
opens any user's. The tests of creating a store (its lock, a full disk, many processes
on a fresh store at once) name paths this module never seeds.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from mlflow import MlflowClient

_TEMPLATE_DIR = Path(tempfile.mkdtemp(prefix="ssgan-test-store-"))
atexit.register(shutil.rmtree, _TEMPLATE_DIR, True)


@functools.cache
def _fresh_store() -> Path:
    """An empty store, created once per test process by MLflow."""
    db = _TEMPLATE_DIR / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # creates the schema
    return db


def seeded_sqlite_uri(db: Path) -> str:
    """``sqlite:///<db>``, the file first made a copy of a fresh store unless it exists."""
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_fresh_store(), db)
    return f"sqlite:///{db}"
