"""Crash-safe file operations, each defined once: a file replaced whole or not at all, a
folder's entries made durable, and an exclusive lock that the OS drops when its holder
dies (so a killed process never leaves anything locked).

Every module that writes state other processes read (the serving folder, the store's
lock, the data cache, a sweep's parent file, reports) goes through these."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO


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


class LockBusyError(OSError):
    """Another process held the lock for longer than the caller would wait."""

    def __init__(self, lock_file: Path, holder: str, waited_s: float) -> None:
        super().__init__(f"{lock_file} is held by {holder or 'another process'}")
        self.lock_file, self.holder, self.waited_s = lock_file, holder, waited_s


@contextlib.contextmanager
def exclusive_lock(lock_file: Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (created if needed) for the block: one
    process at a time, across processes; released by the kernel if the holder dies. With
    ``wait_s``, give up after that long (:class:`LockBusyError` names the holder: a holder
    that is alive but stopped, say by SIGSTOP, would otherwise block everyone for good)."""
    with open(lock_file, "a+") as handle:
        _acquire(handle, lock_file, wait_s)
        try:
            # Who holds it, for whoever waits in vain (the lock is the flock, not this
            # text); left as it is when this process held it last, so a command that
            # changes nothing leaves the file's bytes alone too.
            holder = f"pid {os.getpid()} on {socket.gethostname()}\n"
            handle.seek(0)
            if handle.read() != holder:
                handle.truncate(0)
                handle.write(holder)
                handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle: IO[str], lock_file: Path, wait_s: float | None) -> None:
    if wait_s is None:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - started
            if waited >= wait_s:
                handle.seek(0)
                raise LockBusyError(lock_file, handle.read().strip(), waited) from None
            time.sleep(min(0.05, wait_s - waited))


@contextlib.contextmanager
def staged_folder(target: Path, kind: str) -> Iterator[Path]:
    """A fresh hidden folder beside ``target`` (``.NAME.<kind>-<hex>``) to build it in,
    renamed to ``target`` (which must be absent or an empty folder) when the block ends
    normally, removed otherwise: ``target`` appears whole or not at all. This process owns
    the folder through an flock on ``<folder>.lock``, taken before the folder exists and
    held until it is renamed or removed, so one left by a killed process is told apart
    from a live one (:func:`remove_abandoned`)."""
    staging = target.parent / f".{target.name}.{kind}-{uuid.uuid4().hex}"
    lock = _owner_lock(staging)
    try:
        with open(lock, "a+") as owner:
            fcntl.flock(owner, fcntl.LOCK_EX)
            staging.mkdir()
            yield staging
            if target.exists():
                target.rmdir()  # empty (callers check); a rename cannot replace it portably
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.unlink(missing_ok=True)


def remove_abandoned(target: Path, kind: str) -> list[Path]:
    """Remove the :func:`staged_folder` folders for ``target`` whose owner died (their
    lock is free); a live owner's folder is left alone. Returns what was removed."""
    removed = []
    for staging in sorted(target.parent.glob(f".{target.name}.{kind}-*")):
        if staging.name.endswith(".lock") or not staging.is_dir():
            continue
        try:
            with open(_owner_lock(staging), "a+") as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(staging, ignore_errors=True)
        except BlockingIOError:
            continue  # its owner is alive and writing it
        except OSError:  # no lock to open (a read-only folder): nothing can be writing
            shutil.rmtree(staging, ignore_errors=True)
        _owner_lock(staging).unlink(missing_ok=True)
        removed.append(staging)
    return removed


def _owner_lock(staging: Path) -> Path:
    return staging.with_name(staging.name + ".lock")
