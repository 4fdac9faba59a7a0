"""Crash-safe file operations (ssgan/files.py): whole files, locks that name their holder."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from ssgan.files import LockBusyError, exclusive_lock, write_atomically

pytestmark = pytest.mark.unit


def test_a_file_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "models.config"
    write_atomically(target, "old\n")
    write_atomically(target, b"new\n")
    assert target.read_text() == "new\n" and os.listdir(tmp_path) == ["models.config"]
    with pytest.raises(IsADirectoryError):  # the rename fails: the old file and no scraps
        write_atomically(tmp_path, "x")
    assert os.listdir(tmp_path) == ["models.config"]


def test_a_lock_held_elsewhere_is_waited_for_then_refused_naming_its_holder(
    tmp_path: Path,
) -> None:
    """A holder that never lets go (a promote stopped by SIGSTOP) is named, not waited on
    for good. flock is per open file, so another thread's hold stands in for a process."""
    lock, held, release = tmp_path / ".lock", threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive_lock(lock):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        started = time.monotonic()
        with pytest.raises(LockBusyError) as busy, exclusive_lock(lock, wait_s=0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 5
        assert busy.value.holder.startswith(f"pid {os.getpid()} on ")
    finally:
        release.set()
        holder.join()
    # Free again once let go; and while held here, held against everyone else.
    with exclusive_lock(lock, wait_s=5), open(lock) as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
