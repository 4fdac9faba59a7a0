"""Version labels (``stable``, ``canary``) in TF Serving's ``models.config``: read them, move
one, and check that a version may be labelled."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ssgan.serving.models_config import labels_of, with_labels, write_atomically
from ssgan.serving.models_config import read as read_models_config
from ssgan.serving.repository import (
    PROVENANCE,
    PromoteError,
    ServingFolder,
    locked,
    read_provenance,
    served_versions,
    write_error,
)


def current_labels(folder: ServingFolder) -> dict[str, int]:
    """``{label: version}`` of this model in models.config (empty before the first label)."""
    return labels_of(read_models_config(folder.models_config), folder.model_name)


def stable_version(folder: ServingFolder) -> int | None:
    """The version labelled ``stable``; in a folder promoted before labels existed, the
    highest version (what TF Serving serves without a models.config)."""
    stable = current_labels(folder).get("stable")
    if stable is not None:
        return stable
    versions = served_versions(folder.root)
    return versions[-1] if versions else None


def is_verified(root: Path, version: int) -> bool:
    """Whether version ``version`` is a folder promote wrote (it has its provenance)."""
    return (root / str(version)).is_dir() and bool(read_provenance(root / str(version)))


def dangling_labels(folder: ServingFolder) -> dict[str, int]:
    """Labels in models.config naming a version that is not a folder promote verified
    (removed by hand, say): TF Serving would be told to serve what is not there."""
    labels = current_labels(folder)
    return {label: v for label, v in labels.items() if not is_verified(folder.root, v)}


def set_label(folder: ServingFolder, label: str, version: int) -> tuple[int | None, dict[str, int]]:
    """Point ``label`` at ``version`` in models.config; return the version it named before
    and the other labels dropped because their version is gone (:func:`dangling_labels`).

    Called under the model's lock; the serving folder's own lock serialises writers of the
    file shared by every model in it. The policy serves exactly the labelled versions, so
    the file never names a version that is not there.
    """
    with locked(folder.serving_dir):
        config = read_models_config(folder.models_config)
        labels = labels_of(config, folder.model_name)
        previous = labels.get(label)
        dropped = {
            other: number
            for other, number in labels.items()
            if other != label and not is_verified(folder.root, number)
        }
        if previous != version or dropped:
            kept = {other: n for other, n in labels.items() if other not in dropped}
            kept[label] = version
            updated = with_labels(config, folder.model_name, folder.server_base_path, kept)
            try:
                write_atomically(folder.models_config, updated)
            except OSError as err:  # the old file is untouched: nothing half-written
                raise write_error(folder.models_config, err) from err
    return previous, dropped


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
