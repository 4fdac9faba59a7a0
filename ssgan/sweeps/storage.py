"""Where a search's Optuna study lives, and opening it for many worker processes.

The default is Optuna's journal file storage beside the MLflow store
(``mlruns/optuna.journal``): every worker appends its operations to one log file under a
file lock, which works for many processes on one machine and on a shared file system
(NFS included, where SQLite's locking does not hold). A URL (``postgresql://…``,
``mysql://…``, ``sqlite:///…``) is an Optuna RDB storage, for clusters with a database.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from ssgan.config import SearchConfig
from ssgan.errors import UserError, first_line
from ssgan.sweeps.journal_tail import drop_torn_tail

JOURNAL_NAME = "optuna.journal"
LEGACY_SQLITE_NAME = "optuna.db"  # the default before the journal: searches begun then


def _store_folder(tracking_uri: str) -> Path:
    """The folder of a local MLflow store (``mlruns/`` for a tracking server or database)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :]).parent
    return Path("mlruns")


def is_url(storage: str) -> bool:
    return "://" in storage


def shown_storage(storage: str) -> str:
    """``storage`` as a line may show it: a URL's password hidden."""
    return re.sub(r"(://[^:/@]+:).*@", r"\1***@", storage)  # to the last @: the host


def storage_location(search: SearchConfig, tracking_uri: str, study_name: str) -> str:
    """``search.storage``; else the journal beside the MLflow store, unless the study was
    begun in the old default ``optuna.db`` there (the same command continues it there)."""
    if search.storage:
        storage = search.storage
        return storage if is_url(storage) else str(Path(storage).resolve())
    folder = _store_folder(tracking_uri).resolve()
    legacy = folder / LEGACY_SQLITE_NAME
    if legacy.is_file() and _holds_study(legacy, study_name):
        return f"sqlite:///{legacy}"
    return str(folder / JOURNAL_NAME)


def _holds_study(path: Path, study_name: str) -> bool:
    if sqlite_problem(f"sqlite:///{path}"):
        return True  # open_storage then says what is wrong with it
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        try:
            rows = db.execute("SELECT 1 FROM studies WHERE study_name = ?", (study_name,))
            return rows.fetchone() is not None
        except sqlite3.DatabaseError:
            return False


def sqlite_problem(storage: str) -> str | None:
    """Why a SQLite study storage cannot be read (truncated, overwritten, not SQLite), as
    one line naming the file and how to recover; None when it reads (or is not SQLite, or
    does not exist yet). Read-only: checking never creates or changes the file."""
    if not storage.startswith("sqlite:///"):
        return None
    path = Path(storage[len("sqlite:///") :])
    if not path.is_file():
        return None
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            result = db.execute("PRAGMA quick_check").fetchone()
        problem = None if result and result[0] == "ok" else str(result[0] if result else "empty")
    except sqlite3.DatabaseError as err:
        problem = str(err)
    return None if problem is None else _unreadable(path, f"a readable SQLite database ({problem})")


def _unreadable(path: Path, what: str) -> str:
    return (
        f"search storage {path} is not {what}: move it aside (mv {path} {path}.broken) and "
        "rerun to start the study afresh (the MLflow runs of its trials are kept), or put "
        "back a good copy of it"
    )


def open_storage(storage: str) -> BaseStorage:
    """The Optuna storage ``storage`` names; UserError (one line) when it cannot be read.
    Opening never writes to an existing study (a journal's torn last record, which no
    complete operation is in, is cut off: see :mod:`ssgan.sweeps.journal_tail`)."""
    problem = sqlite_problem(storage)
    if problem:
        raise UserError(problem)
    if is_url(storage):
        try:
            return RDBStorage(storage)
        except (ImportError, ModuleNotFoundError) as err:
            raise UserError(
                f"search.storage={storage}: its database driver is not installed ({err}); "
                "for PostgreSQL: pip install 'ssgan[postgres]'"
            ) from err
        except Exception as err:  # SQLAlchemy's many connection errors, one line each
            raise UserError(
                f"search.storage={storage}: cannot open it ({first_line(err)})"
            ) from err
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not drop_torn_tail(path):
        raise UserError(_unreadable(path, "an Optuna journal (a line is not a journal record)"))
    try:  # opening replays the log: a damaged file fails here, not in a trial
        journal = JournalStorage(JournalFileBackend(str(path)))
        journal.get_all_studies()
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise UserError(_unreadable(path, f"an Optuna journal ({type(err).__name__})")) from err
    return journal


def load_existing(storage: str, study_name: str) -> optuna.Study | None:
    """The study, read-only use (reports), or None when the storage or study is absent."""
    if not is_url(storage) and not Path(storage).is_file():
        return None  # opening a journal path would create the file
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///") :]).is_file():
        return None  # likewise for SQLite
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        return None
