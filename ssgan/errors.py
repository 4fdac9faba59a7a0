"""Errors that are the user's to fix. Entry points print them as one line, no traceback."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# A full disk, a file-size limit (ulimit -f) or a quota: no retry helps until space is freed.
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# What the OS, TensorFlow and SQLite (SQLITE_FULL) say when a disk is full.
_DISK_FULL_TEXTS = (
    "No space left on device",
    "File too large",
    "Disk quota exceeded",
    "database or disk is full",
)
# Less free than this in the temp folder's file system after a write failed for want of
# space: that file system is the full one (what the failed write took is freed by then).
_NEARLY_FULL = 64 * 2**20


def first_line(err: BaseException) -> str:
    """The first non-blank line of ``err``'s message, stripped; its class name when the
    message is blank (``KeyboardInterrupt()``, ``OSError()``), so a handler that quotes
    an error never fails on it."""
    for line in str(err).splitlines():
        if line.strip():
            return line.strip()
    return type(err).__name__


def tf_reason(message: str) -> str:
    """The informative line of a TensorFlow error's message (not its "Graph execution
    error:" header, the node it was detected at or that node's Python stack), at most 300
    characters; "" when it has none."""
    skip = ("Graph execution error", "Detected at node", "File ", "<stack", "[[")
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return next((line[:300] for line in lines if not line.startswith(skip)), "")


class UserError(Exception):
    """Bad input from a user: a config value, a file, a run id. The message is one line
    saying what was wrong, which key or file, and what is allowed."""


class ConfigError(UserError):
    """A config value that cannot work."""


class DataError(UserError):
    """A data file or data setting that cannot be used."""


class DiskFullError(UserError):
    """A write failed for want of disk space (or a file-size limit)."""


def disk_full_reason(err: BaseException, written: str | Path | None = None) -> str | None:
    """The OS's words when ``err`` (or what caused it) is a full disk, else None. TF's
    file errors carry the OS message, not an errno. ``written``: the folder the failed
    work was writing, when known; a failure there while its file system is nearly out of
    space counts as a full disk too (MLflow's download hides the OS error behind "please
    ensure that the path is correct"). When the temp folder is the full one (``written``
    or a path the error names lies in it, or its file system is nearly full now) the
    words name it: the place to free, or to move ``TMPDIR`` away from."""
    words = next(filter(None, map(_disk_full_words, _chain(err))), None)
    if words is None and written is not None and _free(written) < _NEARLY_FULL:
        words = "No space left on device"
    if words is None:
        return None
    temp = _full_temp_folder(err, written)
    return words if temp is None else f"{words} in {temp}"


def _free(folder: str | Path) -> float:
    """Free bytes in ``folder``'s file system (the nearest existing folder up); inf when
    it cannot be read."""
    path = os.path.abspath(folder)
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return float("inf")


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and what caused it, each once: an exception object raised again while it
    was being handled is its own context, a cycle."""
    seen: BaseException | None = err
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        yield seen
        seen = seen.__cause__ or seen.__context__


def _disk_full_words(err: BaseException) -> str | None:
    if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
        return err.strerror or str(err)
    return next((text for text in _DISK_FULL_TEXTS if text in str(err)), None)


def _full_temp_folder(err: BaseException, written: str | Path | None) -> str | None:
    """'the temp folder /x (TMPDIR, on the file system at /x; 0 B free now)' when the temp
    folder is where a disk-full ``err`` struck, else None."""
    temp = tempfile.gettempdir()
    forms = {temp, os.path.realpath(temp)}
    paths = [written] + [
        getattr(seen, attr, None) for seen in _chain(err) for attr in ("filename", "filename2")
    ]
    paths += [  # TF's file errors name the file in their message
        found for seen in _chain(err) for form in forms for found in _paths_in(str(seen), form)
    ]
    # A folder mounted inside the temp folder (a disk of its own at /tmp/x) is not it.
    named = any(_inside(path, forms) and _same_file_system(path, temp) for path in paths)
    free = _free(temp)
    if not named and free >= _NEARLY_FULL:
        return None
    now = "" if free == float("inf") else f"; {_size(free)} free now"
    return f"the temp folder {temp} (TMPDIR, on the file system at {_mount_point(temp)}{now})"


def _paths_in(message: str, folder: str) -> list[str]:
    """The paths under ``folder`` that ``message`` names (up to a space, ';' or quote)."""
    start = folder.rstrip(os.sep) + os.sep
    found, at = [], message.find(start)
    while at >= 0:
        end = len(message)
        for stop in " ;'\"\n":
            if (cut := message.find(stop, at)) >= 0:
                end = min(end, cut)
        found.append(message[at:end])
        at = message.find(start, end)
    return found


def _same_file_system(path: object, folder: str) -> bool:
    """Whether ``path`` (its nearest existing folder up: a failed write's file may be
    gone) lies on ``folder``'s file system; True when that cannot be told."""
    if not isinstance(path, (str, Path)):
        return False
    near = os.path.abspath(path)
    while not os.path.exists(near) and os.path.dirname(near) != near:
        near = os.path.dirname(near)
    try:
        return os.stat(near).st_dev == os.stat(folder).st_dev
    except OSError:
        return True


def _inside(path: object, folders: set[str]) -> bool:
    if not isinstance(path, (str, Path)):
        return False
    real = os.path.realpath(path)
    return any(
        real == folder or real.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders
    )


def _mount_point(folder: str) -> str:
    path = os.path.realpath(folder)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def _size(n_bytes: float) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
