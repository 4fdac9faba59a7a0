"""A search journal's last record cut off by a crash: found, and dropped so the study goes on.

Optuna's journal (``optuna.journal``) is one JSON record per line, appended under a lock.
A worker killed mid-append leaves a last line without its newline; Optuna's reader skips
it, but the next append lands after it and turns it into a bad line that every later
read fails on. Under the same lock the writers take (so no append is in progress), a
torn last record is cut off and every complete record is kept. A file whose complete
lines are not all journal records is not a journal: that is refused, never cut.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock


def _complete_lines_are_records(data: bytes) -> bool:
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
            return False
        if not isinstance(record, dict) or "op_code" not in record:
            return False
    return True


def drop_torn_tail(path: Path) -> bool:
    """Cut a torn last record off the journal at ``path``, keeping every complete one; True
    when the file is a journal (or empty, or absent), False when it is something else."""
    if not path.is_file() or path.stat().st_size == 0:
        return True
    lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's journal writers take
    lock.acquire()
    try:
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        torn = data[len(complete) :]
        if not _complete_lines_are_records(complete):
            return False
        if torn and not torn.startswith(b"{"):
            return False  # not the start of a record: not a journal's torn tail
        if torn:
            records = complete.count(b"\n")
            with open(path, "r+b") as handle:
                handle.truncate(len(complete))
                handle.flush()
                os.fsync(handle.fileno())
            print(
                f"warning: search storage {path}: dropped its last record, cut off by a crash "
                f"({len(torn)} bytes); its {records} complete records are kept",
                file=sys.stderr,
            )
        return True
    finally:
        lock.release()
