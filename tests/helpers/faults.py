"""File-system faults injected into this process: writes under a folder that fail as on a
read-only file system (EROFS), a full disk (ENOSPC) or a folder one may not write
(EACCES). The tests run as root, whom permission bits do not stop, so ``chmod`` cannot
make such a folder; the faults are raised where Python asks the OS to write."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def failing_writes(
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    code: int,
    *,
    allowed: int = 0,
    name_contains: str = "",
) -> None:
    """From now on (until ``monkeypatch`` undoes it) opening a file under ``folder`` for
    writing, and making, renaming or removing anything there, fails with OS error
    ``code``, once ``allowed`` files have been opened for writing there. Only paths whose
    text contains ``name_contains`` are affected."""
    folder = folder.resolve()
    opened = [0]

    def affected(path: Any) -> bool:
        if not isinstance(path, str | bytes | os.PathLike):
            return False  # a file descriptor
        resolved = Path(os.fsdecode(path)).resolve()
        return resolved.is_relative_to(folder) and name_contains in str(resolved)

    def fail(path: Any) -> None:
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    def opening(path: Any) -> None:
        if affected(path):
            if opened[0] >= allowed:
                fail(path)
            opened[0] += 1

    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(flag in mode for flag in "wax+"):
            opening(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & WRITE_FLAGS and "dir_fd" not in kwargs:
            opening(path)
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    for name in ("mkdir", "rename", "replace", "unlink", "rmdir"):
        real = getattr(os, name)

        def guarded(path: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if affected(path) and opened[0] >= allowed and "dir_fd" not in kwargs:
                fail(path)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, guarded)


READ_ONLY, DISK_FULL, NOT_PERMITTED = errno.EROFS, errno.ENOSPC, errno.EACCES
