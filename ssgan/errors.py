"""Errors that are the user's to fix. Entry points print them as one line, no traceback."""

from __future__ import annotations

import errno

# A full disk, a file-size limit (ulimit -f) or a quota: no retry helps until space is freed.
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# What the OS, TensorFlow and SQLite (SQLITE_FULL) say when a disk is full.
_DISK_FULL_TEXTS = (
    "No space left on device",
    "File too large",
    "Disk quota exceeded",
    "database or disk is full",
)


def first_line(err: BaseException) -> str:
    """The first non-blank line of ``err``'s message, stripped; its class name when the
    message is blank (``KeyboardInterrupt()``, ``OSError()``), so a handler that quotes
    an error never fails on it."""
    for line in str(err).splitlines():
        if line.strip():
            return line.strip()
    return type(err).__name__


class UserError(Exception):
    """Bad input from a user: a config value, a file, a run id. The message is one line
    saying what was wrong, which key or file, and what is allowed."""


class ConfigError(UserError):
    """A config value that cannot work."""


class DataError(UserError):
    """A data file or data setting that cannot be used."""


class DiskFullError(UserError):
    """A write failed for want of disk space (or a file-size limit)."""


def disk_full_reason(err: BaseException) -> str | None:
    """The OS's words when ``err`` (or what caused it) is a full disk, else None. TF's
    file errors carry the OS message, not an errno."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL_ERRNOS:
            return seen.strerror or str(seen)
        for text in _DISK_FULL_TEXTS:
            if text in str(seen):
                return text
        seen = seen.__cause__ or seen.__context__
    return None
