"""The versioned serving folder TF Serving reads: version numbers never reused, versions that
appear complete or not at all (staging, fsync, rename under a lock), their provenance."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssgan.config import PromoteAppConfig
from ssgan.errors import UserError, disk_full_reason
from ssgan.files import LockBusyError, exclusive_lock, fsync_folder, write_atomically
from ssgan.serving.models_config import MODELS_CONFIG

PROVENANCE = Path("assets.extra") / "provenance.json"
# TF Serving only looks at folders named by an integer, so dot-names are invisible to it.
LOCK_FILE = ".promote.lock"
STAGING_PREFIX = ".staging-"
STAGING_LOCK = "owner.lock"  # held by the promote writing the staging folder while it lives


class PromoteError(UserError):
    """A run, model or serving directory that cannot be promoted."""


def write_error(path: Path, err: OSError, what: str = "write") -> PromoteError:
    """One line for a file promote could not write (a full disk, a read-only folder):
    which file, why, and what to do before running the command again."""
    full = disk_full_reason(err)
    advice = f"free space on the disk of {path.parent}" if full else f"make {path.parent} writable"
    return PromoteError(
        f"cannot {what} {path} ({full or err.strerror or err}): {advice}, then run the "
        "same command again"
    )


@dataclass(frozen=True)
class ServingFolder:
    """One model in the folder TF Serving watches: ``<serving_dir>/<model_name>/<N>/`` for
    its versions and ``<serving_dir>/models.config`` for the labels, which TF Serving reads
    under ``server_path`` (where ``serving_dir`` appears inside its container)."""

    serving_dir: Path
    model_name: str
    server_path: str = "/models"

    @classmethod
    def of(cls, promote_cfg: PromoteAppConfig) -> ServingFolder:
        """The folder named by promote's ``serving_dir``, ``model_name``, ``server_model_dir``."""
        return cls(
            Path(promote_cfg.serving_dir),
            promote_cfg.model_name,
            promote_cfg.server_model_dir,
        )

    @property
    def root(self) -> Path:
        """``<serving_dir>/<model_name>``: the base path TF Serving is pointed at."""
        return self.serving_dir / self.model_name

    @property
    def models_config(self) -> Path:
        """``<serving_dir>/models.config``, the file ``--model_config_file`` reads."""
        return self.serving_dir / MODELS_CONFIG

    @property
    def server_base_path(self) -> str:
        """The model's base path as TF Serving sees it."""
        return f"{self.server_path.rstrip('/')}/{self.model_name}"


# TF Serving's version numbers are signed 64-bit integers.
MAX_VERSION = 2**63 - 1


def is_version(value: Any) -> bool:
    """A version number TF Serving accepts: an integer from 1 to 2^63 - 1."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_VERSION


def served_versions(root: Path) -> list[int]:
    """Integer version folders, the ones TF Serving loads, ascending (a folder whose number
    TF Serving could not hold is not one)."""
    if not root.is_dir():
        return []
    numbers = (int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir())
    return sorted(n for n in numbers if is_version(n))


def read_provenance(version_dir: Path) -> dict[str, Any]:
    """A version's provenance record; empty for a folder placed there by hand."""
    try:
        return json.loads((version_dir / PROVENANCE).read_text())
    except (OSError, ValueError):
        return {}


def version_of_run(root: Path, run_id: str) -> int | None:
    """The highest version serving ``run_id``'s model, if any."""
    for version in reversed(served_versions(root)):
        if read_provenance(root / str(version)).get("run_id") == run_id:
            return version
    return None


def check_writable(root: Path) -> None:
    """Fail before any work if ``root`` cannot be created or written; changes nothing."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir():
        try:
            with tempfile.NamedTemporaryFile(dir=existing, prefix=".probe-"):
                return
        except OSError as err:
            reason = err.strerror or str(err)
    else:
        reason = f"{existing} is not a directory"
    raise PromoteError(f"serving_dir: cannot write {root} ({reason}): choose another serving_dir")


def prepare_root(root: Path) -> None:
    """Create ``root``; on failure remove the folders this call created."""
    created = [p for p in (root, *root.parents) if not p.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as err:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise PromoteError(
            f"serving_dir: cannot write {root} ({err.strerror or err}): choose another serving_dir"
        ) from err


# How long a promote waits for another one's lock on a folder. Copying a model and
# recording it in MLflow takes seconds to minutes; a holder that keeps it longer is stopped
# (SIGSTOP, a suspended terminal) or hung, and waiting on it would never end.
LOCK_WAIT_S = 600.0


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Exclusive lock on ``root`` for cleaning, numbering and renaming.

    flock is released by the kernel when the holder dies, so a killed promote never
    leaves the serving directory locked; a live holder that keeps it past
    :data:`LOCK_WAIT_S` is named in one line.
    """
    path = root / LOCK_FILE
    try:
        with exclusive_lock(path, wait_s=LOCK_WAIT_S):
            yield
    except LockBusyError as busy:
        raise PromoteError(
            f"another promote has held {path} for over {busy.waited_s:.0f} s "
            f"({busy.holder or 'holder unknown'}): it may be stopped or hung; let it finish "
            "or end that process, then run the same command again"
        ) from busy
    except OSError as err:
        if err.filename != str(path):
            raise
        raise write_error(path, err, "lock") from err


@contextlib.contextmanager
def staging_folder(root: Path) -> Iterator[Path]:
    """A fresh ``.staging-<uuid>`` folder owned (flock) by this process; removed after."""
    with locked(root):
        _remove_stale_staging(root)
        staging = root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        owner = open(staging / STAGING_LOCK, "a+")  # noqa: SIM115  (held until removal)
        fcntl.flock(owner, fcntl.LOCK_EX)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        owner.close()


def _remove_stale_staging(root: Path) -> None:
    """Remove staging folders whose promote died (their owner lock is free). Caller holds
    the root lock, under which staging folders are created with their lock already taken."""
    for staging in root.glob(f"{STAGING_PREFIX}*"):
        try:
            with open(staging / STAGING_LOCK, "a+") as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live promote is copying into it
        except OSError:
            pass  # no lock file at all: not one of ours in working order
        shutil.rmtree(staging, ignore_errors=True)


def copy_tree(
    source: Path, destination: Path, on_file_copied: Callable[[Path], None] | None = None
) -> dict[str, str]:
    """Copy files one by one, fsync each file and folder; return SHA-256 of the bytes written.

    ``on_file_copied(target)`` is called after each file (tests hold a copy mid-way with it).
    A write that fails (a full disk) is one line naming the file.
    """
    try:
        return _copy_tree(source, destination, on_file_copied)
    except OSError as err:
        raise write_error(Path(err.filename or destination), err) from err


def _copy_tree(
    source: Path, destination: Path, on_file_copied: Callable[[Path], None] | None
) -> dict[str, str]:
    hashes: dict[str, str] = {}
    destination.mkdir()
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        target = destination / relative
        if path.is_dir():
            target.mkdir()
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as src, open(target, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        hashes[relative.as_posix()] = digest.hexdigest()
        if on_file_copied is not None:
            on_file_copied(target)
    for folder in sorted((p for p in destination.rglob("*") if p.is_dir()), reverse=True):
        fsync_folder(folder)
    fsync_folder(destination)
    return hashes


def write_json(path: Path, record: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    except OSError as err:
        raise write_error(path, err) from err
