"""Entry point: ``python -m ssgan.promote run_id=<id>`` (also ``ssgan-promote``).

Copies one run's exported SavedModel into ``<serving_dir>/<model_name>/<N>/``, the layout
TensorFlow Serving reads, and labels it in ``<serving_dir>/models.config`` (TF Serving's
model config: a ``specific`` version policy serving exactly the labelled versions,
``stable`` and ``canary``). The model is verified before anything in the serving directory
changes: it loads, meets the serving contract and gives the scores its run recorded for
the run's verification images (no training data needed). It is then copied into a staging
folder whose name TF Serving ignores, fsynced and renamed into place, so a version appears
complete or not at all. A lock gives concurrent promotes distinct versions, and a log of
every number handed out means a number is never reused, even after its folder was deleted.
``label=<label> version=<N>`` moves a label (rollback: move ``stable`` back); the MLflow
registry aliases follow the labels, and rerunning a command repairs MLflow records that a
failure left missing. ``bundle=<folder>`` writes the hand-over bundle (see ssgan.deploy).
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
from omegaconf import DictConfig, OmegaConf

from ssgan.cli import CONFIG_DIR, check_overrides, user_errors
from ssgan.config import register_schemas
from ssgan.errors import ConfigError, UserError
from ssgan.export import ExportError, verify_saved_model
from ssgan.serving_config import LABELS, MODELS_CONFIG, labels_of, with_labels, write_atomically
from ssgan.serving_config import read as read_models_config
from ssgan.tracking.registry import registered_version, registry_aliases, set_registry_alias
from ssgan.tracking.runs import (
    MODEL_ARTIFACT,
    download_artifacts,
    get_run,
    has_artifact,
    load_run_config,
    set_run_tags,
)
from ssgan.verification import (
    VERIFICATION_ARTIFACT,
    VerificationError,
    check_model,
    load_verification_set,
)

PROVENANCE = Path("assets.extra") / "provenance.json"
# TF Serving only looks at folders named by an integer, so dot-names are invisible to it.
LOCK_FILE = ".promote.lock"
VERSION_LOG = ".versions.jsonl"  # every version number ever handed out, one JSON per line
STAGING_PREFIX = ".staging-"
STAGING_LOCK = "owner.lock"  # held by the promote writing the staging folder while it lives
RUN_TAG = "ssgan.promoted_version"
# Tags of a registry version: which serving folder and version it is (several serving
# folders may share one registry).
SERVING_VERSION_TAG = "ssgan.serving_version"
SERVING_ROOT_TAG = "ssgan.serving_root"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# An image repository without a tag: [registry[:port]/]path, lowercase (Docker's grammar).
IMAGE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
# Test hook: after each copied file, wait while the file this names exists, so a test can
# hold promotes mid-copy (to kill one, or to make two overlap) and then let them go.
COPY_GATE_ENV = "SSGAN_PROMOTE_COPY_GATE"


class PromoteError(UserError):
    """A run, model or serving directory that cannot be promoted."""


def validate_promote_config(cfg: DictConfig) -> None:
    """One-line ConfigError for promote keys that cannot work."""
    version = int(cfg.version)
    if version < 0:
        raise ConfigError(f"version={version} is not a version number: use 1, 2, ...")
    if cfg.run_id and version:
        raise ConfigError(
            f"run_id and version={version} given together: run_id=<id> promotes a run into a "
            "new version, version=<N> label=<label> moves a label to an existing one"
        )
    wants_run = not (cfg.list or version or cfg.bundle)
    if (cfg.run_id or wants_run) and not RUN_ID.match(str(cfg.run_id)):
        raise ConfigError(
            f"run_id={cfg.run_id or '(empty)'} is not an MLflow run id: expected 32 lowercase "
            "hex characters, e.g. run_id=3f9c0d6e4b7a4c21a0d3e8b5f1c2a9d7 (or list=true, "
            "version=<N> label=<label>, bundle=<folder>)"
        )
    name = str(cfg.model_name)
    if not MODEL_NAME.match(name) or ".." in name:
        raise ConfigError(
            f"model_name={name} is not a plain directory name: use letters, digits, '.', '_' "
            "and '-', starting with a letter or digit, without '/' or '..'"
        )
    if not str(cfg.serving_dir).strip():
        raise ConfigError("serving_dir is empty: give the folder TF Serving watches")
    if str(cfg.label) not in LABELS:
        raise ConfigError(f"label={cfg.label} is not a version label: allowed {', '.join(LABELS)}")
    if not str(cfg.server_model_dir).startswith("/"):
        raise ConfigError(
            f"server_model_dir={cfg.server_model_dir} is not an absolute path: give where "
            "serving_dir appears inside the TF Serving container, e.g. /models"
        )
    if not IMAGE.match(str(cfg.image)):
        raise ConfigError(
            f"image={cfg.image} is not an image repository: lowercase letters, digits, "
            "'.', '_', '-', '/' and an optional registry host, without a tag, e.g. "
            "registry.example.com/ml/ssgan-serving (the bundle adds the tag)"
        )
    for key in ("min_accuracy", "accuracy_tolerance", "score_tolerance"):
        if not 0.0 <= float(cfg[key]) <= 1.0:
            raise ConfigError(f"{key}={cfg[key]} is out of range: allowed 0.0 to 1.0")
    for key in ("alias", "canary_alias"):
        # MLflow reserves "latest" and version-like names ("v3") for itself.
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", str(cfg[key])) or re.fullmatch(
            r"(?i)latest|v\d+", str(cfg[key])
        ):
            raise ConfigError(
                f"{key}={cfg[key]} is not a usable registry alias: start with a letter, then "
                "letters, digits, '_' or '-'; not 'latest' or 'v<number>'"
            )
    if str(cfg.alias) == str(cfg.canary_alias):
        raise ConfigError(
            f"alias and canary_alias are both '{cfg.alias}': the stable and canary labels need "
            "different registry aliases"
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


def _verify(cfg: DictConfig, run, model_dir: Path, scratch: Path) -> dict[str, Any]:
    """Contract check, then the run's recorded verification set: the model must give the
    scores recorded when the run exported it. No training data is needed (or made)."""
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
    if not has_artifact(cfg.tracking, run_id, VERIFICATION_ARTIFACT):
        raise PromoteError(
            f"run {run_id} recorded no verification set ('{VERIFICATION_ARTIFACT}'), which "
            "promote checks the model with: runs trained before it was recorded cannot be "
            "promoted; train again"
        )
    path = download_artifacts(cfg.tracking, run_id, VERIFICATION_ARTIFACT, scratch)
    try:
        record = load_verification_set(path)
    except VerificationError as err:
        raise PromoteError(f"run {run_id}: {err}") from err
    checked = check_model(model_dir, record)
    if not checked["max_score_difference"] <= float(cfg.score_tolerance):
        raise PromoteError(
            f"the model of run {run_id} does not give the scores recorded for its "
            f"{checked['images']} verification images (largest difference "
            f"{checked['max_score_difference']:.4g} > score_tolerance={cfg.score_tolerance}): "
            "it is not the model the run measured; not promoted"
        )
    if abs(record["test_accuracy"] - logged) > float(cfg.accuracy_tolerance):
        raise PromoteError(
            f"run {run_id} logged export/test_accuracy {logged:.4f} but its verification set "
            f"records {record['test_accuracy']:.4f} on its test set "
            f"(accuracy_tolerance={cfg.accuracy_tolerance}): not promoted"
        )
    accuracy = record["test_accuracy"]
    if accuracy < float(cfg.min_accuracy):
        raise PromoteError(
            f"test accuracy {accuracy:.4f} is below min_accuracy={cfg.min_accuracy}: not promoted"
        )
    return {
        "accuracy": accuracy,
        "test_images": record["test_images"],
        "test_set_sha256": record["test_set_sha256"],
        "verification_images": checked["images"],
        "verification_max_score_difference": checked["max_score_difference"],
    }


def _check_live(cfg: DictConfig, root: Path, verified: dict[str, Any]) -> None:
    """``must_beat_live``: refuse a model less accurate than the stable version."""
    live = stable_version(cfg, root)
    if not cfg.must_beat_live or live is None:
        return
    record = read_provenance(root / str(live))
    live_accuracy = record.get("verified_test_accuracy")
    if not isinstance(live_accuracy, float):
        raise PromoteError(
            f"must_beat_live=true but stable version {live} has no provenance accuracy "
            "to compare with: promote without must_beat_live"
        )
    if record.get("test_set_sha256") != verified["test_set_sha256"]:
        raise PromoteError(
            f"must_beat_live=true but stable version {live} was scored on another test "
            "set, so the accuracies do not compare: promote without must_beat_live"
        )
    if verified["accuracy"] < live_accuracy:
        raise PromoteError(
            f"test accuracy {verified['accuracy']:.4f} is below stable version {live}'s "
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
        "verification_images": verified["verification_images"],
        "verification_max_score_difference": verified["verification_max_score_difference"],
        "metrics": dict(run.data.metrics),
        "config": OmegaConf.to_container(run_cfg, resolve=False),
    }


# -- labels: TF Serving's models.config ------------------------------------------------------


def models_config_path(cfg: DictConfig) -> Path:
    """``<serving_dir>/models.config``, the file TF Serving's ``--model_config_file`` reads."""
    return Path(str(cfg.serving_dir)) / MODELS_CONFIG


def current_labels(cfg: DictConfig) -> dict[str, int]:
    """``{label: version}`` of this model in models.config (empty before the first label)."""
    return labels_of(read_models_config(models_config_path(cfg)), str(cfg.model_name))


def stable_version(cfg: DictConfig, root: Path) -> int | None:
    """The version labelled ``stable``; in a folder promoted before labels existed, the
    highest version (what TF Serving serves without a models.config)."""
    stable = current_labels(cfg).get("stable")
    if stable is not None:
        return stable
    versions = served_versions(root)
    return versions[-1] if versions else None


def _set_label(cfg: DictConfig, label: str, version: int) -> int | None:
    """Point ``label`` at ``version`` in models.config; return the version it named before.

    Called under the model's lock; the serving folder's own lock serialises writers of the
    file shared by every model in it. The policy serves exactly the labelled versions.
    """
    serving_dir = Path(str(cfg.serving_dir))
    with _locked(serving_dir):
        path = models_config_path(cfg)
        config = read_models_config(path)
        labels = labels_of(config, str(cfg.model_name))
        previous = labels.get(label)
        if previous != version:
            labels[label] = version
            base_path = f"{str(cfg.server_model_dir).rstrip('/')}/{cfg.model_name}"
            write_atomically(path, with_labels(config, str(cfg.model_name), base_path, labels))
    return previous


def check_labellable(root: Path, version: int) -> dict[str, Any]:
    """A version a label may name: its folder exists and holds what promote verified
    (provenance present, every file's SHA-256 as recorded). Returns its provenance."""
    folder = root / str(version)
    if not folder.is_dir():
        have = ", ".join(map(str, served_versions(root))) or "none"
        raise PromoteError(
            f"version={version}: there is no version {version} in {root} (versions: {have}); "
            "list them with list=true"
        )
    record = read_provenance(folder)
    if not record.get("run_id") or not isinstance(record.get("sha256"), dict):
        raise PromoteError(
            f"version={version}: {folder} was not verified by promote (no "
            f"{PROVENANCE.as_posix()}): promote its run instead"
        )
    for name, digest in sorted(record["sha256"].items()):
        try:
            actual = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        except OSError:
            actual = None
        if actual != digest:
            raise PromoteError(
                f"version={version}: {folder / name} is not the file promote verified (missing "
                "or changed since): promote its run again"
            )
    return record


# -- MLflow records ------------------------------------------------------------------------


def _alias_for(cfg: DictConfig, label: str) -> str:
    return str(cfg.alias) if label == "stable" else str(cfg.canary_alias)


def _record_in_mlflow(
    cfg: DictConfig, root: Path, run_id: str | None, version: int | None
) -> list[str]:
    """Make MLflow agree with the serving folder: the run's tag names its version, each
    labelled version (and ``version``) has a registry version, each label's registry alias
    points at it. Writes only what is missing or wrong, so running it again after a
    failure repairs. Returns what it had to write."""
    where = f"version {version} is in {root / str(version)}" if version else f"{root} is"
    try:
        return _sync_mlflow(cfg, root, run_id, version)
    except UserError as err:
        problem = str(err)
    except Exception as err:  # the serving folder is already changed: say so, one line
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
    raise PromoteError(
        f"{where} as intended, but recording it in MLflow failed ({problem}): "
        "run the same command again to record it"
    )


def _sync_mlflow(cfg: DictConfig, root: Path, run_id: str | None, version: int | None) -> list[str]:
    written: list[str] = []
    if run_id and version:
        wanted = {
            RUN_TAG: str(version),
            "ssgan.promoted_path": str((root / str(version)).resolve()),
        }
        tags = get_run(cfg.tracking, run_id).data.tags
        if any(tags.get(key) != value for key, value in wanted.items()):
            set_run_tags(cfg.tracking, run_id, wanted)
            written.append(f"run tag {RUN_TAG}={version}")
    labels = current_labels(cfg)
    registry: dict[int, str] = {}
    for number in sorted({*labels.values(), *([version] if version else [])}):
        owner = read_provenance(root / str(number)).get("run_id")
        if not owner:
            continue
        tags = {SERVING_VERSION_TAG: str(number), SERVING_ROOT_TAG: str(root.resolve())}
        registry[number], created = registered_version(
            cfg.tracking, str(cfg.model_name), owner, tags, MODEL_ARTIFACT
        )
        if created:
            written.append(f"registry version {registry[number]} (version {number})")
    aliases = registry_aliases(cfg.tracking, str(cfg.model_name))
    for label, number in sorted(labels.items()):
        alias = _alias_for(cfg, label)
        if number in registry and aliases.get(alias) != registry[number]:
            set_registry_alias(cfg.tracking, str(cfg.model_name), alias, registry[number])
            written.append(f"alias {alias} -> registry version {registry[number]}")
    return written


# -- promote, label, list --------------------------------------------------------------------


def promote(cfg: DictConfig) -> dict[str, Any]:
    """Run the action the config asks for: ``list=true`` lists versions; ``run_id=`` promotes
    a run into a new version labelled ``label``; ``version=`` moves ``label`` to an existing
    version. ``bundle=`` then writes the hand-over bundle of the labelled versions.

    Returns ``{"action": ...}`` with what happened (see :func:`describe`).
    """
    validate_promote_config(cfg)
    root = model_root(cfg)
    if cfg.list:
        return {"action": "list", "versions": list_versions(cfg, root)}
    if cfg.run_id:
        result = _promote_run(cfg, root)
    elif int(cfg.version):
        result = _move_label(cfg, root)
    else:
        result = {"action": "bundle"}
    if cfg.bundle:
        from ssgan.deploy import write_bundle  # only the hand-over needs the manifests

        result["bundle"] = write_bundle(cfg, root, current_labels(cfg))
    return result


def _promote_run(cfg: DictConfig, root: Path) -> dict[str, Any]:
    _check_serving_path(root)
    current_labels(cfg)  # a broken models.config stops here, before any work
    run = _check_run(cfg)
    run_id = run.info.run_id
    holder = _holder(root, run_id)
    if holder is not None and not cfg.force:
        return _result(cfg, root, holder, already=True, run_id=run_id)
    run_cfg = load_run_config(cfg.tracking, run_id)
    # Download and verify outside the serving directory: a refused model changes nothing.
    with tempfile.TemporaryDirectory(prefix="ssgan-promote-") as scratch:
        model_dir = download_artifacts(cfg.tracking, run_id, MODEL_ARTIFACT, Path(scratch))
        verified = _verify(cfg, run, model_dir, Path(scratch))
        _check_live(cfg, root, verified)
        record = _provenance(cfg, run, run_cfg, verified)
        _prepare_root(root)
        with _staging(root) as staging:
            version = _publish(cfg, root, model_dir, staging, record)
    if version < 0:  # a concurrent promote of the same run got there first
        return _result(cfg, root, -version, already=True, run_id=run_id)
    return _result(cfg, root, version, already=False, run_id=run_id)


def _publish(
    cfg: DictConfig, root: Path, model_dir: Path, staging: Path, record: dict[str, Any]
) -> int:
    """Copy into staging, then number, rename and label under the lock. Returns the new
    version, or minus the version that already holds the run (when ``force`` is off)."""
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
        # Only then the label: models.config never names a version that is not complete.
        _set_label(cfg, str(cfg.label), version)
    return version


def _move_label(cfg: DictConfig, root: Path) -> dict[str, Any]:
    """``label=<label> version=<N>``: point the label at an existing, verified version."""
    version, label = int(cfg.version), str(cfg.label)
    check_labellable(root, version)  # before the lock, so a refusal creates no lock file
    with _locked(root):
        record = check_labellable(root, version)
        previous = _set_label(cfg, label, version)
    written = _record_in_mlflow(cfg, root, None, None)
    return {
        "action": "label",
        "label": label,
        "version": version,
        "previous": previous,
        "run_id": record["run_id"],
        "config": str(models_config_path(cfg)),
        "recorded": written,
    }


def _result(
    cfg: DictConfig, root: Path, version: int, *, already: bool, run_id: str
) -> dict[str, Any]:
    """After a promote (or finding the run already promoted): bring MLflow up to date."""
    written = _record_in_mlflow(cfg, root, run_id, version)
    labels = current_labels(cfg)
    return {
        "action": "promote",
        "version": version,
        "path": str(root / str(version)),
        "already": already,
        "labels": sorted(label for label, number in labels.items() if number == version),
        "stable_version": labels.get("stable"),
        "recorded": written,
    }


def list_versions(cfg: DictConfig, root: Path) -> list[dict[str, Any]]:
    """Every version handed out: folders with their run, accuracy and labels, and numbers
    whose folder was removed."""
    rows: dict[int, dict[str, Any]] = {}
    for entry in version_log(root):
        rows[entry["version"]] = {
            "version": entry["version"],
            "run_id": entry.get("run_id", "?"),
            "test_accuracy": entry.get("verified_test_accuracy"),
            "promoted_at": entry.get("promoted_at", "?"),
            "state": "removed",
        }
    labels = current_labels(cfg)
    for version in served_versions(root):
        record = read_provenance(root / str(version))
        named = [label for label in LABELS if labels.get(label) == version]
        rows[version] = {
            "version": version,
            "run_id": record.get("run_id", "?"),
            "test_accuracy": record.get("verified_test_accuracy"),
            "promoted_at": record.get("promoted_at", "?"),
            "state": ",".join(named) or "unlabelled",
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
    lines = []
    if result["action"] == "promote":
        lines.append(_describe_promote(cfg, result))
    elif result["action"] == "label":
        lines.append(_describe_label(result))
    # A fresh version's records are expected; after a rerun they are repairs worth saying.
    if result.get("recorded") and (result["action"] == "label" or result.get("already")):
        lines.append("recorded in MLflow: " + ", ".join(result["recorded"]))
    if "bundle" in result:
        lines.append(f"wrote the hand-over bundle {result['bundle']['path']}")
        lines.append(f"  build: {result['bundle']['build']}")
        lines.append(f"  apply: {result['bundle']['apply']}")
    return "\n".join(lines)


def _describe_promote(cfg: DictConfig, result: dict[str, Any]) -> str:
    run_id, version = cfg.run_id, result["version"]
    labelled = f"labelled {'+'.join(result['labels'])}" if result["labels"] else "not labelled"
    if not result["already"]:
        return f"promoted run {run_id} as version {version}: {result['path']} ({labelled})"
    return (
        f"run {run_id} is already served as version {version} ({labelled}); nothing copied "
        f"(move a label to it with version={version} label=<label>; force=true promotes it "
        "again as a new version)"
    )


def _describe_label(result: dict[str, Any]) -> str:
    label, version, previous = result["label"], result["version"], result["previous"]
    if previous == version:
        return f"label {label} is already on version {version}; {result['config']} unchanged"
    was = f"was version {previous}" if previous is not None else "new label"
    return f"label {label} -> version {version} ({was}): {result['config']}"


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
