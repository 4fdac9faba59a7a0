"""Crash-safe file operations, each defined once: a file replaced whole or not at all, a
folder's entries made durable, and an exclusive lock that the OS drops when its holder
dies (so a killed process never leaves anything locked).

Every module that writes state other processes read (the serving folder, the store's
lock, the data cache, a sweep's parent file, reports) goes through these."""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def fsync_folder(path: Path) -> None:
    """Make the entries of folder ``path`` (new, renamed or removed names) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` whole or not at all: a temporary file beside it (the
    same file system, so the rename is atomic), fsynced, renamed over it, and the folder
    fsynced. A reader sees the old file or the new one, never half of one; nothing is
    left behind on failure."""
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_folder(path.parent)


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (created if needed) for the block: one
    process at a time, across processes; released by the kernel if the holder dies."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
