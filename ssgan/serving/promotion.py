"""Promotion: what ``python -m ssgan.promote`` does, as a function of its config.

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
failure left missing. ``bundle=<folder>`` writes the hand-over bundle
(:mod:`ssgan.serving.bundle`).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ssgan.config import PromoteAppConfig, typed
from ssgan.files import fsync_folder
from ssgan.serving.gate import check_beats_live, check_run, provenance_record, verify_run_model
from ssgan.serving.labels import (
    check_labellable,
    current_labels,
    set_label,
)
from ssgan.serving.promote_checks import validate_promote_config
from ssgan.serving.promotion_result import PromotionResult
from ssgan.serving.registry_sync import alias_for, record_in_mlflow
from ssgan.serving.repository import (
    PROVENANCE,
    PromoteError,
    ServingFolder,
    check_writable,
    copy_tree,
    locked,
    prepare_root,
    read_provenance,
    staging_folder,
    version_of_run,
    write_json,
)
from ssgan.serving.version_log import (
    DONE,
    list_versions,
    log_version,
    next_version,
    unfinished_versions,
    version_log,
)
from ssgan.tracking.mlflow_model import download_run_model, saved_model_in
from ssgan.tracking.runs import load_run_config
from ssgan.tracking.store import TrackingStore

FileHook = Callable[[Path], None]  # called with each file copied into staging


def promote_settings(cfg: DictConfig) -> PromoteAppConfig:
    """The composed promote config, checked (:func:`validate_promote_config`), as the
    frozen value :func:`promote` takes."""
    validate_promote_config(cfg)
    return typed(cfg, PromoteAppConfig)


def promote(cfg: PromoteAppConfig, on_file_copied: FileHook | None = None) -> PromotionResult:
    """Run the action the settings ask for: ``list=true`` lists versions; ``run_id=``
    promotes a run into a new version labelled ``label``; ``version=`` moves ``label`` to an
    existing version. ``bundle=`` then writes the hand-over bundle of the labelled versions.
    ``on_file_copied`` is called after each file copied into staging (a test hook).

    Returns what happened (:func:`describe` words it).
    """
    folder = ServingFolder.of(cfg)
    if cfg.list:
        return PromotionResult("list", versions=list_versions(folder))
    store = TrackingStore(cfg.tracking)  # opened when first used
    if cfg.run_id:
        result = _promote_run(cfg, store, folder, on_file_copied)
    elif cfg.version:
        result = _move_label(cfg, store, folder)
    else:
        result = PromotionResult("bundle")
    if cfg.bundle:
        from ssgan.serving.bundle import write_bundle  # only the hand-over needs the manifests

        labels = current_labels(folder)
        bundle = write_bundle(Path(cfg.bundle), folder, labels, cfg.image)
        result = replace(result, bundle=bundle)
    return result


def _promote_run(
    cfg: PromoteAppConfig,
    store: TrackingStore,
    folder: ServingFolder,
    on_file_copied: FileHook | None,
) -> PromotionResult:
    root = folder.root
    check_writable(root)
    current_labels(folder)  # a broken models.config stops here, before any work
    version_log(root)  # and so does a damaged version log
    run = check_run(cfg, store)
    run_id = run.info.run_id
    holder = version_of_run(root, run_id)
    if holder is not None and not cfg.force:
        if holder in unfinished_versions(version_log(root)):
            return _finish(cfg, store, folder, holder, run_id)
        return _result(cfg, store, folder, holder, already=True, run_id=run_id)
    run_cfg = load_run_config(store, run_id)
    # Download and verify outside the serving directory: a refused model changes nothing.
    with tempfile.TemporaryDirectory(prefix="ssgan-promote-") as scratch:
        # The SavedModel inside the run's MLflow Model (or an older run's plain model/).
        model_dir = saved_model_in(download_run_model(store, run_id, Path(scratch)))
        verified = verify_run_model(cfg, store, run, model_dir, Path(scratch))
        if cfg.must_beat_live:
            check_beats_live(folder, verified)
        record = provenance_record(store, run, run_cfg, verified)
        prepare_root(root)
        with staging_folder(root) as staging:
            version, dropped = _publish(cfg, folder, model_dir, staging, record, on_file_copied)
    if version < 0:  # a concurrent promote of the same run got there first
        return _result(cfg, store, folder, -version, already=True, run_id=run_id)
    return replace(
        _result(cfg, store, folder, version, already=False, run_id=run_id), dropped=dropped
    )


def _publish(
    cfg: PromoteAppConfig,
    folder: ServingFolder,
    model_dir: Path,
    staging: Path,
    record: dict[str, Any],
    on_file_copied: FileHook | None = None,
) -> tuple[int, dict[str, int]]:
    """Copy into staging, then number, rename and label under the lock. Returns the new
    version (or minus the version that already holds the run, when ``force`` is off) and
    the labels dropped because their version is gone."""
    staged = staging / "model"
    root = folder.root
    hashes = copy_tree(model_dir, staged, on_file_copied)
    record = {**record, "sha256": hashes}
    with locked(root):
        holder = version_of_run(root, record["run_id"])
        if holder is not None and not cfg.force:
            return -holder, {}
        if cfg.must_beat_live:
            check_beats_live(folder, {"accuracy": record["verified_test_accuracy"], **record})
        version = next_version(root)
        record["version"] = version
        record["promoted_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        write_json(staged / PROVENANCE, record)
        log_version(
            root,
            {
                "version": version,
                "run_id": record["run_id"],
                "promoted_at": record["promoted_at"],
                "verified_test_accuracy": record["verified_test_accuracy"],
                DONE: False,  # until labelled: a rerun of this command finishes it
            },
        )
        # One rename within one file system: TF Serving sees the whole version or nothing.
        os.rename(staged, root / str(version))
        fsync_folder(root)
        # Only then the label: models.config never names a version that is not complete.
        dropped = _label_published(cfg, folder, version)
    return version, dropped


def _label_published(cfg: PromoteAppConfig, folder: ServingFolder, version: int) -> dict[str, int]:
    """Point ``cfg.label`` at the published ``version`` and log it done; under the lock.
    Returns the labels dropped because their version is gone."""
    try:
        dropped = set_label(folder, cfg.label, version)[1]
    except PromoteError as err:
        raise PromoteError(
            f"version {version} is in {folder.root / str(version)}, not labelled {cfg.label} "
            f"yet: {err} to label it"
        ) from err
    log_version(folder.root, {"version": version, DONE: True})
    return dropped


def _finish(
    cfg: PromoteAppConfig, store: TrackingStore, folder: ServingFolder, version: int, run_id: str
) -> PromotionResult:
    """The same command again after its promote stopped between publishing ``version``
    and labelling it (killed, or models.config unwritable): label it as asked now."""
    dropped: dict[str, int] = {}
    with locked(folder.root):
        if version in unfinished_versions(version_log(folder.root)):  # not finished meanwhile
            if cfg.must_beat_live:
                record = read_provenance(folder.root / str(version))
                check_beats_live(folder, {"accuracy": record["verified_test_accuracy"], **record})
            dropped = _label_published(cfg, folder, version)
    return replace(
        _result(cfg, store, folder, version, already=False, run_id=run_id), dropped=dropped
    )


def _move_label(
    cfg: PromoteAppConfig, store: TrackingStore, folder: ServingFolder
) -> PromotionResult:
    """``label=<label> version=<N>``: point the label at an existing, verified version."""
    version, label, root = cfg.version, cfg.label, folder.root
    check_labellable(root, version)  # before the lock, so a refusal creates no lock file
    with locked(root):
        record = check_labellable(root, version)
        previous, dropped = set_label(folder, label, version)
    recorded = record_in_mlflow(cfg, store, folder, None, None)
    return PromotionResult(
        "label",
        label=label,
        version=version,
        previous=previous,
        run_id=record["run_id"],
        config=str(folder.models_config),
        recorded=recorded.written,
        removed_aliases=sorted(recorded.removed_aliases),
        dropped=dropped,
    )


def _result(
    cfg: PromoteAppConfig,
    store: TrackingStore,
    folder: ServingFolder,
    version: int,
    *,
    already: bool,
    run_id: str,
) -> PromotionResult:
    """After a promote (or finding the run already promoted): bring MLflow up to date."""
    recorded = record_in_mlflow(cfg, store, folder, run_id, version)
    labels = current_labels(folder)
    return PromotionResult(
        "promote",
        version=version,
        path=str(folder.root / str(version)),
        already=already,
        labels=sorted(label for label, number in labels.items() if number == version),
        stable_version=labels.get("stable"),
        recorded=recorded.written,
        removed_aliases=sorted(recorded.removed_aliases),
    )


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


def describe(cfg: PromoteAppConfig, result: PromotionResult) -> str:
    """What the command line prints for a promote's result."""
    lines = []
    if result.action == "promote":
        lines.append(_describe_promote(cfg, result))
    elif result.action == "label":
        lines.append(_describe_label(result))
    dropped = sorted(result.dropped.items())
    removed = set(result.removed_aliases)
    # A fresh version's records are expected; after a rerun they are repairs worth saying.
    recorded = result.recorded
    if recorded and (result.action == "label" or result.already):
        lines.append("recorded in MLflow: " + ", ".join(recorded))
    for label, number in dropped:
        alias = alias_for(cfg, label)
        lines.append(
            f"label {label} dropped from models.config: its version {number} is gone from the "
            "serving folder"
            + (
                f", and so is registry alias {alias} (models:/{cfg.model_name}@{alias})"
                if alias in removed
                else ""
            )
            + f" (point it again with label={label} version=<N>)"
        )
    if result.bundle is not None:
        for stale in result.bundle.get("removed", []):
            lines.append(f"removed {stale}, left by a killed bundle")
        lines.append(f"wrote the hand-over bundle {result.bundle['path']}")
        lines.append(f"  build: {result.bundle['build']}")
        lines.append(f"  apply: {result.bundle['apply']}")
    return "\n".join(lines)


def _describe_promote(cfg: PromoteAppConfig, result: PromotionResult) -> str:
    run_id, version = cfg.run_id, result.version
    labelled = f"labelled {'+'.join(result.labels)}" if result.labels else "not labelled"
    if not result.already:
        return f"promoted run {run_id} as version {version}: {result.path} ({labelled})"
    return (
        f"run {run_id} is already served as version {version} ({labelled}); nothing copied "
        f"(move a label to it with version={version} label=<label>; force=true promotes it "
        "again as a new version)"
    )


def _describe_label(result: PromotionResult) -> str:
    label, version, previous = result.label, result.version, result.previous
    if previous == version:
        return f"label {label} is already on version {version}; {result.config} unchanged"
    was = f"was version {previous}" if previous is not None else "new label"
    return f"label {label} -> version {version} ({was}): {result.config}"
