"""Entry point: ``python -m ssgan.promote run_id=<id>`` (also ``ssgan-promote``).

Copies one run's exported SavedModel into ``<serving_dir>/<model_name>/<N>/``, the layout
TensorFlow Serving watches (it serves the highest integer version). The model is verified
before anything in the serving directory changes (it loads, meets the serving contract and
scores the run's test set at the accuracy the run logged). It is then copied into a staging
folder whose name TF Serving ignores, fsynced and renamed into place, so a version appears
complete or not at all. A lock gives concurrent promotes distinct versions, and a log of
every number handed out means a number is never reused, even after its folder was deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from ssgan.cli import CONFIG_DIR, check_overrides, user_errors
from ssgan.config import register_schemas
from ssgan.data import load_data
from ssgan.errors import ConfigError, UserError
from ssgan.export import ExportError, score_saved_model, verify_saved_model
from ssgan.tracking import (
    MODEL_ARTIFACT,
    download_artifacts,
    get_run,
    has_artifact,
    load_run_config,
    register_model_version,
    set_run_tags,
)

PROVENANCE = Path("assets.extra") / "provenance.json"
# TF Serving only looks at folders named by an integer, so dot-names are invisible to it.
LOCK_FILE = ".promote.lock"
VERSION_LOG = ".versions.jsonl"  # every version number ever handed out, one JSON per line
STAGING_PREFIX = ".staging-"
STAGING_LOCK = "owner.lock"  # held by the promote writing the staging folder while it lives
RUN_TAG = "ssgan.promoted_version"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Test hook: after each copied file, wait while the file this names exists, so a test can
# hold promotes mid-copy (to kill one, or to make two overlap) and then let them go.
COPY_GATE_ENV = "SSGAN_PROMOTE_COPY_GATE"


class PromoteError(UserError):
    """A run, model or serving directory that cannot be promoted."""


def validate_promote_config(cfg: DictConfig) -> None:
    """One-line ConfigError for promote keys that cannot work."""
    if not cfg.list and not RUN_ID.match(str(cfg.run_id)):
        raise ConfigError(
            f"run_id={cfg.run_id or '(empty)'} is not an MLflow run id: expected 32 lowercase "
            "hex characters, e.g. run_id=3f9c0d6e4b7a4c21a0d3e8b5f1c2a9d7 (or list=true)"
        )
    name = str(cfg.model_name)
    if not MODEL_NAME.match(name) or ".." in name:
        raise ConfigError(
            f"model_name={name} is not a plain directory name: use letters, digits, '.', '_' "
            "and '-', starting with a letter or digit, without '/' or '..'"
        )
    if not str(cfg.serving_dir).strip():
        raise ConfigError("serving_dir is empty: give the folder TF Serving watches")
    for key in ("min_accuracy", "accuracy_tolerance"):
        if not 0.0 <= float(cfg[key]) <= 1.0:
            raise ConfigError(f"{key}={cfg[key]} is out of range: allowed 0.0 to 1.0")
    # MLflow reserves "latest" and version-like names ("v3") for itself.
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", str(cfg.alias)) or re.fullmatch(
        r"(?i)latest|v\d+", str(cfg.alias)
    ):
        raise ConfigError(
            f"alias={cfg.alias} is not a usable registry alias: start with a letter, then "
            "letters, digits, '_' or '-'; not 'latest' or 'v<number>'"
        )


# -- the serving directory, as TF Serving sees it --------------------------------------------


def model_root(cfg: DictConfig) -> Path:
    """``<serving_dir>/<model_name>``: the base path TF Serving is pointed at."""
    return Path(str(cfg.serving_dir)) / str(cfg.model_name)


def served_versions(root: Path) -> list[int]:
    """Integer version folders, the ones TF Serving loads, ascending."""
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir())


def read_provenance(version_dir: Path) -> dict[str, Any]:
    """A version's provenance record; empty for a folder placed there by hand."""
    try:
        return json.loads((version_dir / PROVENANCE).read_text())
    except (OSError, ValueError):
        return {}


def version_log(root: Path) -> list[dict[str, Any]]:
    """The log of handed-out versions; a line cut short by a killed promote is skipped."""
    try:
        lines = (root / VERSION_LOG).read_text().splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and isinstance(entry.get("version"), int):
                entries.append(entry)
    return entries


def _holder(root: Path, run_id: str) -> int | None:
    """The highest version serving ``run_id``'s model, if any."""
    for version in reversed(served_versions(root)):
        if read_provenance(root / str(version)).get("run_id") == run_id:
            return version
    return None


def _next_version(root: Path) -> int:
    used = [entry["version"] for entry in version_log(root)]
    return max([0, *used, *served_versions(root)]) + 1


def _log_version(root: Path, entry: dict[str, Any]) -> None:
    """Append and fsync one log line before the version appears, so it is never reused."""
    path = root / VERSION_LOG
    with open(path, "a+b") as handle:
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                line = b"\n" + line  # end the line a killed promote left unfinished
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def _check_serving_path(root: Path) -> None:
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


def _prepare_root(root: Path) -> None:
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


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Exclusive lock on ``root`` for cleaning, numbering and renaming.

    flock is released by the kernel when the holder dies, so a killed promote never
    leaves the serving directory locked.
    """
    with open(root / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A fresh ``.staging-<uuid>`` folder owned (flock) by this process; removed after."""
    with _locked(root):
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


# -- copying ---------------------------------------------------------------------------------


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_tree(source: Path, destination: Path) -> dict[str, str]:
    """Copy files one by one, fsync each file and folder; return SHA-256 of the bytes written."""
    gate = os.environ.get(COPY_GATE_ENV)
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
        while gate and os.path.exists(gate):
            time.sleep(0.01)
    for folder in sorted((p for p in destination.rglob("*") if p.is_dir()), reverse=True):
        _fsync_path(folder)
    _fsync_path(destination)
    return hashes


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_path(path.parent)


# -- checks ----------------------------------------------------------------------------------


def _check_run(cfg: DictConfig):
    """The MLflow run, refused unless FINISHED with a ``model/`` artifact."""
    run_id = str(cfg.run_id)
    run = get_run(cfg.tracking, run_id)
    if run.info.status != "FINISHED":
        raise PromoteError(
            f"run {run_id} is {run.info.status}, not FINISHED: only finished runs can be "
            "promoted (resume an interrupted one with python -m ssgan.train resume=<run_id>)"
        )
    if not has_artifact(cfg.tracking, run_id, MODEL_ARTIFACT):
        raise PromoteError(
            f"run {run_id} has no exported model (no '{MODEL_ARTIFACT}/' artifact): export one "
            "from its checkpoint with python -m ssgan.export"
        )
    return run


def _verify(cfg: DictConfig, run, run_cfg: DictConfig, model_dir: Path) -> dict[str, Any]:
    """Contract check, then test accuracy through ``serving_default`` against the run's."""
    run_id = run.info.run_id
    try:
        verify_saved_model(model_dir)
    except ExportError as err:
        detail = str(err).replace(str(model_dir), f"{MODEL_ARTIFACT}/")
        raise PromoteError(f"the model of run {run_id} fails verification: {detail}") from err
    logged = run.data.metrics.get("export/test_accuracy")
    if logged is None:
        raise PromoteError(
            f"run {run_id} logged no export/test_accuracy to check its model against: "
            "re-export it with python -m ssgan.export"
        )
    data = load_data(run_cfg.data, int(run_cfg.model.num_classes))
    scores = score_saved_model(model_dir, data.test_x)
    accuracy = float(np.mean(np.argmax(scores, axis=-1) == data.test_y))
    if abs(accuracy - logged) > float(cfg.accuracy_tolerance):
        raise PromoteError(
            f"the model of run {run_id} scores {accuracy:.4f} on its test set but the run "
            f"logged {logged:.4f} (accuracy_tolerance={cfg.accuracy_tolerance}): not promoted"
        )
    if accuracy < float(cfg.min_accuracy):
        raise PromoteError(
            f"test accuracy {accuracy:.4f} is below min_accuracy={cfg.min_accuracy}: not promoted"
        )
    test_set = hashlib.sha256(data.test_x.tobytes() + data.test_y.tobytes()).hexdigest()
    return {"accuracy": accuracy, "test_images": len(data.test_y), "test_set_sha256": test_set}


def _check_live(cfg: DictConfig, root: Path, verified: dict[str, Any]) -> None:
    """``must_beat_live``: refuse a model less accurate than the served (highest) version."""
    versions = served_versions(root)
    if not cfg.must_beat_live or not versions:
        return
    live = read_provenance(root / str(versions[-1]))
    live_accuracy = live.get("verified_test_accuracy")
    if not isinstance(live_accuracy, float):
        raise PromoteError(
            f"must_beat_live=true but live version {versions[-1]} has no provenance accuracy "
            "to compare with: promote without must_beat_live"
        )
    if live.get("test_set_sha256") != verified["test_set_sha256"]:
        raise PromoteError(
            f"must_beat_live=true but live version {versions[-1]} was scored on another test "
            "set, so the accuracies do not compare: promote without must_beat_live"
        )
    if verified["accuracy"] < live_accuracy:
        raise PromoteError(
            f"test accuracy {verified['accuracy']:.4f} is below live version {versions[-1]}'s "
            f"{live_accuracy:.4f} (must_beat_live=true): not promoted"
        )


def _provenance(
    cfg: DictConfig, run, run_cfg: DictConfig, verified: dict[str, Any]
) -> dict[str, Any]:
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "experiment": OmegaConf.select(run_cfg, "tracking.experiment"),
        "tracking_uri": str(cfg.tracking.uri),
        "artifact_uri": f"{run.info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT}",
        "git_commit": run.data.tags.get("mlflow.source.git.commit"),
        "git_dirty": run.data.tags.get("ssgan.git_dirty"),
        "verified_test_accuracy": verified["accuracy"],
        "test_images": verified["test_images"],
        "test_set_sha256": verified["test_set_sha256"],
        "metrics": dict(run.data.metrics),
        "config": OmegaConf.to_container(run_cfg, resolve=False),
    }


# -- promote and list ------------------------------------------------------------------------


def promote(cfg: DictConfig) -> dict[str, Any]:
    """Promote ``run_id`` into the next version, or list versions with ``list=true``.

    Returns ``{"version", "path", "already", "live_version"}`` (``already`` when a version
    holds the run and ``force`` is off) or ``{"versions": [...]}`` for a listing.
    """
    validate_promote_config(cfg)
    root = model_root(cfg)
    if cfg.list:
        return {"versions": list_versions(root)}
    _check_serving_path(root)
    run = _check_run(cfg)
    run_id = run.info.run_id
    holder = _holder(root, run_id)
    if holder is not None and not cfg.force:
        return _result(root, holder, already=True)
    run_cfg = load_run_config(cfg.tracking, run_id)
    # Download and verify outside the serving directory: a refused model changes nothing.
    with tempfile.TemporaryDirectory(prefix="ssgan-promote-") as scratch:
        model_dir = download_artifacts(cfg.tracking, run_id, MODEL_ARTIFACT, Path(scratch))
        verified = _verify(cfg, run, run_cfg, model_dir)
        _check_live(cfg, root, verified)
        record = _provenance(cfg, run, run_cfg, verified)
        _prepare_root(root)
        with _staging(root) as staging:
            version = _publish(cfg, root, model_dir, staging, record)
    if version < 0:  # a concurrent promote of the same run got there first
        return _result(root, -version, already=True)
    _record_in_mlflow(cfg, run_id, version, root / str(version))
    return _result(root, version, already=False)


def _publish(
    cfg: DictConfig, root: Path, model_dir: Path, staging: Path, record: dict[str, Any]
) -> int:
    """Copy into staging, then number and rename under the lock. Returns the new version,
    or minus the version that already holds the run (when ``force`` is off)."""
    staged = staging / "model"
    hashes = _copy_tree(model_dir, staged)
    record = {**record, "sha256": hashes}
    with _locked(root):
        holder = _holder(root, record["run_id"])
        if holder is not None and not cfg.force:
            return -holder
        _check_live(cfg, root, {"accuracy": record["verified_test_accuracy"], **record})
        version = _next_version(root)
        record["version"] = version
        record["promoted_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        _write_json(staged / PROVENANCE, record)
        _log_version(
            root,
            {
                "version": version,
                "run_id": record["run_id"],
                "promoted_at": record["promoted_at"],
                "verified_test_accuracy": record["verified_test_accuracy"],
            },
        )
        # One rename within one file system: TF Serving sees the whole version or nothing.
        os.rename(staged, root / str(version))
        _fsync_path(root)
    return version


def _record_in_mlflow(cfg: DictConfig, run_id: str, version: int, path: Path) -> None:
    try:
        set_run_tags(
            cfg.tracking,
            run_id,
            {RUN_TAG: str(version), "ssgan.promoted_path": str(path.resolve())},
        )
        register_model_version(
            cfg.tracking, str(cfg.model_name), run_id, MODEL_ARTIFACT, str(cfg.alias)
        )
    except Exception as err:  # the version is already served: say so rather than crash
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PromoteError(
            f"version {version} is served from {path}, but recording it in MLflow failed "
            f"({message}): the run tag and the '{cfg.alias}' alias were not set"
        ) from err


def _result(root: Path, version: int, *, already: bool) -> dict[str, Any]:
    versions = served_versions(root)
    return {
        "version": version,
        "path": str(root / str(version)),
        "already": already,
        "live_version": versions[-1] if versions else None,
    }


def list_versions(root: Path) -> list[dict[str, Any]]:
    """Every version handed out: served folders with their run and accuracy, the live one
    (highest) marked, and numbers whose folder was removed."""
    rows: dict[int, dict[str, Any]] = {}
    for entry in version_log(root):
        rows[entry["version"]] = {
            "version": entry["version"],
            "run_id": entry.get("run_id", "?"),
            "test_accuracy": entry.get("verified_test_accuracy"),
            "promoted_at": entry.get("promoted_at", "?"),
            "state": "removed",
        }
    versions = served_versions(root)
    for version in versions:
        record = read_provenance(root / str(version))
        rows[version] = {
            "version": version,
            "run_id": record.get("run_id", "?"),
            "test_accuracy": record.get("verified_test_accuracy"),
            "promoted_at": record.get("promoted_at", "?"),
            "state": "live" if version == versions[-1] else "served",
        }
    return [rows[v] for v in sorted(rows)]


def format_versions(root: Path, rows: list[dict[str, Any]]) -> str:
    """The table ``list=true`` prints."""
    if not rows:
        return f"no versions in {root}"
    lines = [f"{'version':>7}  {'run_id':32}  {'test acc':>8}  {'promoted at (UTC)':25}  state"]
    for row in rows:
        accuracy = row["test_accuracy"]
        shown = f"{accuracy:.4f}" if isinstance(accuracy, float) else "?"
        lines.append(
            f"{row['version']:>7}  {row['run_id']:32}  {shown:>8}  "
            f"{row['promoted_at']:25}  {row['state']}"
        )
    return "\n".join(lines)


def describe(cfg: DictConfig, result: dict[str, Any]) -> str:
    """What the command line prints for a promote's result."""
    run_id, version = cfg.run_id, result["version"]
    if not result["already"]:
        return f"promoted run {run_id} as version {version}: {result['path']} (now live)"
    if result["live_version"] == version:
        state = "the live version"
    else:
        state = f"not live: version {result['live_version']} is"
    return (
        f"run {run_id} is already served as version {version} ({state}); nothing done "
        "(force=true promotes it again as a new version, e.g. to roll back)"
    )


@hydra.main(config_path=CONFIG_DIR, config_name="promote", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with user_errors():
        result = promote(cfg)
    if cfg.list:
        print(format_versions(model_root(cfg), result["versions"]))
    else:
        print(describe(cfg, result))
    sys.stdout.flush()


def main() -> None:
    register_schemas()
    with user_errors():
        check_overrides("promote", sys.argv[1:], validate_promote_config)
    _hydra_main()


if __name__ == "__main__":
    main()
