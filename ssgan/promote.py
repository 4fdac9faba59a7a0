"""Entry point: ``python -m ssgan.promote run_id=<id>`` (also ``ssgan-promote``).

Copies one run's exported SavedModel into ``<serving_dir>/<model_name>/<N>/``, the layout
TensorFlow Serving watches (it serves the highest integer version). The model is verified
first (loads, meets the serving contract, scores the run's test set at the accuracy the
run logged), staged in a directory TF Serving ignores, fsynced and renamed into place, so
a version appears complete or not at all. A lock gives concurrent promotes distinct
versions; numbers are never reused, even after a version was deleted.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from ssgan.cli import CONFIG_DIR, check_overrides, user_errors
from ssgan.config import register_schemas
from ssgan.errors import ConfigError, UserError

PROVENANCE = Path("assets.extra") / "provenance.json"
LOCK_FILE = ".promote.lock"
LAST_VERSION_FILE = ".last_version"  # highest number ever used; TF Serving ignores it
STAGING_PREFIX = ".staging-"
ALIAS = "production"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PromoteError(UserError):
    """A run or serving directory that cannot be promoted into."""


def validate_promote_config(cfg: DictConfig) -> None:
    """One-line ConfigError for promote keys that cannot work."""
    if not cfg.list and not re.fullmatch(r"[0-9a-f]{32}", str(cfg.run_id)):
        raise ConfigError(
            f"run_id={cfg.run_id or '(empty)'} is not an MLflow run id: expected 32 lowercase "
            "hex characters, e.g. run_id=3f9c0d6e4b7a4c21a0d3e8b5f1c2a9d7 (or list=true)"
        )
    name = str(cfg.model_name)
    if not MODEL_NAME.match(name) or ".." in name:
        raise ConfigError(
            f"model_name={name} is not a plain directory name: use letters, digits, '.', '_' "
            "and '-', without '/' or '..'"
        )
    for key in ("min_accuracy", "accuracy_tolerance"):
        if not 0.0 <= float(cfg[key]) <= 1.0:
            raise ConfigError(f"{key}={cfg[key]} is out of range: allowed 0.0 to 1.0")


# -- the serving directory -------------------------------------------------------------------


def model_root(cfg: DictConfig) -> Path:
    return Path(str(cfg.serving_dir)) / str(cfg.model_name)


def served_versions(root: Path) -> list[int]:
    """Integer version directories, as TF Serving sees them, ascending."""
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir())


def read_provenance(version_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((version_dir / PROVENANCE).read_text())
    except (OSError, ValueError):
        return {}


def _prepare_root(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as err:
        raise PromoteError(
            f"serving_dir={root.parent} is not a writable directory ({err.strerror or err}): "
            "choose another serving_dir"
        ) from err


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Exclusive lock on ``root`` for numbering and renaming; released if we die."""
    with open(root / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _next_version(root: Path) -> int:
    recorded = 0
    with contextlib.suppress(OSError, ValueError):
        recorded = int((root / LAST_VERSION_FILE).read_text().strip())
    return max([recorded, *served_versions(root)]) + 1


def _record_version(root: Path, version: int) -> None:
    partial = root / f"{LAST_VERSION_FILE}.{os.getpid()}"
    partial.write_text(f"{version}\n")
    _fsync_file(partial)
    os.replace(partial, root / LAST_VERSION_FILE)


def _remove_stale_staging(root: Path) -> None:
    """Staging folders of promotes that died (their process is gone) are removed."""
    for path in root.glob(f"{STAGING_PREFIX}*"):
        pid = path.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for directory, _, files in os.walk(folder):
        for name in files:
            _fsync_file(Path(directory) / name)
        _fsync_file(Path(directory))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- verification ------------------------------------------------------------------------------


def _check_run(cfg: DictConfig):
    from ssgan.tracking import get_run, has_artifact

    run = get_run(cfg.tracking, str(cfg.run_id))
    if run.info.status != "FINISHED":
        raise PromoteError(
            f"run {cfg.run_id} is {run.info.status}, not FINISHED: only finished runs can be "
            "promoted (resume it with python -m ssgan.train resume=<run_id>)"
        )
    if not has_artifact(cfg.tracking, str(cfg.run_id), "model"):
        raise PromoteError(
            f"run {cfg.run_id} has no exported model (no 'model/' artifact); export one with "
            "python -m ssgan.export"
        )
    return run


def _verify(cfg: DictConfig, run, model_dir: Path) -> float:
    """The model's test accuracy through its serving signature, checked against the run."""
    from ssgan.data import load_data
    from ssgan.export import score_saved_model, verify_saved_model
    from ssgan.tracking import load_run_config

    verify_saved_model(model_dir)
    logged = run.data.metrics.get("export/test_accuracy")
    if logged is None:
        raise PromoteError(f"run {cfg.run_id} logged no export/test_accuracy to verify against")
    run_cfg = load_run_config(cfg.tracking, str(cfg.run_id))
    data = load_data(run_cfg.data, int(run_cfg.model.num_classes))
    scores = score_saved_model(model_dir, data.test_x)
    accuracy = float(np.mean(np.argmax(scores, axis=-1) == data.test_y))
    if abs(accuracy - logged) > float(cfg.accuracy_tolerance):
        raise PromoteError(
            f"the model of run {cfg.run_id} scores {accuracy:.4f} on its test set but the run "
            f"logged {logged:.4f} (accuracy_tolerance={cfg.accuracy_tolerance}): not promoted"
        )
    if accuracy < float(cfg.min_accuracy):
        raise PromoteError(
            f"test accuracy {accuracy:.4f} is below min_accuracy={cfg.min_accuracy}: not promoted"
        )
    return accuracy


def _check_live(cfg: DictConfig, root: Path, accuracy: float) -> None:
    versions = served_versions(root)
    if not cfg.must_beat_live or not versions:
        return
    live = read_provenance(root / str(versions[-1])).get("verified_test_accuracy", 0.0)
    if accuracy < live:
        raise PromoteError(
            f"test accuracy {accuracy:.4f} is below the live version {versions[-1]}'s "
            f"{live:.4f} (must_beat_live=true): not promoted"
        )


def _holder(root: Path, run_id: str) -> int | None:
    for version in reversed(served_versions(root)):
        if read_provenance(root / str(version)).get("run_id") == run_id:
            return version
    return None


def _write_provenance(cfg: DictConfig, run, model_dir: Path, accuracy: float) -> None:
    from ssgan.tracking import load_run_config

    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    record = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "run_name": run.info.run_name,
        "tracking_uri": str(cfg.tracking.uri),
        "git_commit": run.data.tags.get("mlflow.source.git.commit"),
        "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "verified_test_accuracy": accuracy,
        "metrics": dict(run.data.metrics),
        "config": OmegaConf.to_container(load_run_config(cfg.tracking, run.info.run_id)),
        "sha256": {str(p.relative_to(model_dir)): _sha256(p) for p in files},
    }
    path = model_dir / PROVENANCE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


# -- promote and list ----------------------------------------------------------------------


def promote(cfg: DictConfig) -> dict[str, Any]:
    """Promote ``run_id`` (or list the served versions with ``list=true``)."""
    validate_promote_config(cfg)
    root = model_root(cfg)
    if cfg.list:
        return {"versions": list_versions(root)}
    run = _check_run(cfg)
    _prepare_root(root)
    with _locked(root):
        _remove_stale_staging(root)
        holder = _holder(root, run.info.run_id)
    if holder is not None and not cfg.force:
        return {"version": holder, "path": str(root / str(holder)), "already": True}
    staging = root / f"{STAGING_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    try:
        version = _stage_and_publish(cfg, run, root, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    path = root / str(version)
    _record_in_mlflow(cfg, run.info.run_id, version, path)
    return {"version": version, "path": str(path), "already": False}


def _stage_and_publish(cfg: DictConfig, run, root: Path, staging: Path) -> int:
    from ssgan.tracking import download_artifacts

    staging.mkdir()
    model_dir = download_artifacts(cfg.tracking, run.info.run_id, "model", staging)
    accuracy = _verify(cfg, run, model_dir)
    _write_provenance(cfg, run, model_dir, accuracy)
    _fsync_tree(model_dir)
    with _locked(root):
        holder = _holder(root, run.info.run_id)  # a concurrent promote of the same run?
        if holder is not None and not cfg.force:
            return holder
        _check_live(cfg, root, accuracy)
        version = _next_version(root)
        # Rename within one file system is atomic: TF Serving sees all of it or nothing.
        os.rename(model_dir, root / str(version))
        _record_version(root, version)
        _fsync_file(root)
    return version


def _record_in_mlflow(cfg: DictConfig, run_id: str, version: int, path: Path) -> None:
    from ssgan.tracking import register_model_version, set_run_tags

    set_run_tags(
        cfg.tracking,
        run_id,
        {"ssgan.promoted_version": str(version), "ssgan.promoted_path": str(path.resolve())},
    )
    register_model_version(cfg.tracking, str(cfg.model_name), run_id, "model", alias=ALIAS)


def list_versions(root: Path) -> list[dict[str, Any]]:
    rows = []
    for version in served_versions(root):
        record = read_provenance(root / str(version))
        rows.append(
            {
                "version": version,
                "run_id": record.get("run_id", "?"),
                "test_accuracy": record.get("verified_test_accuracy"),
                "promoted_at": record.get("promoted_at", "?"),
                "live": False,
            }
        )
    if rows:
        rows[-1]["live"] = True
    return rows


def _print_versions(root: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        print(f"no versions in {root}")
        return
    print(f"{'version':>7}  {'run_id':32}  {'test acc':>8}  {'promoted at (UTC)':25}")
    for row in rows:
        accuracy = row["test_accuracy"]
        shown = f"{accuracy:.4f}" if isinstance(accuracy, float) else "?"
        live = "  <- live" if row["live"] else ""
        print(f"{row['version']:>7}  {row['run_id']:32}  {shown:>8}  {row['promoted_at']:25}{live}")


@hydra.main(config_path=CONFIG_DIR, config_name="promote", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with user_errors():
        result = promote(cfg)
    root = model_root(cfg)
    if cfg.list:
        _print_versions(root, result["versions"])
    elif result["already"]:
        print(
            f"run {cfg.run_id} is already served as version {result['version']} "
            f"({result['path']}); nothing done (force=true promotes it again)"
        )
    else:
        print(f"promoted run {cfg.run_id} as version {result['version']}: {result['path']}")
    sys.stdout.flush()


def main() -> None:
    register_schemas()
    with user_errors():
        check_overrides("promote", sys.argv[1:], validate_promote_config)
    _hydra_main()


if __name__ == "__main__":
    main()
