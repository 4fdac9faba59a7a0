"""The log of version numbers handed out (``<model>/.versions.jsonl``), which keeps a number
from being used twice even after its folder was deleted, and the versions ``list=true``
shows: every number handed out, with its run, accuracy and state."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ssgan.serving.labels import current_labels, dangling_labels
from ssgan.serving.models_config import LABELS
from ssgan.serving.repository import (
    MAX_VERSION,
    PromoteError,
    ServingFolder,
    is_version,
    read_provenance,
    served_versions,
    write_error,
)

VERSION_LOG = ".versions.jsonl"  # every version number ever handed out, one JSON per line


def version_log(root: Path) -> list[dict[str, Any]]:
    """The log of handed-out versions; a line cut short by a killed promote is skipped.

    The file is untrusted input: a record whose version is not a number TF Serving
    accepts stops everything with one line that names the line and how to repair it."""
    path = root / VERSION_LOG
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    entries = []
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # cut short by a killed promote
        if not isinstance(entry, dict) or not is_version(entry.get("version")):
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise PromoteError(
                f"{path} line {number} is not a version record ({shown}): versions are "
                f"integers from 1 to {MAX_VERSION}; correct or delete that line (the log "
                "only keeps numbers from being handed out twice)"
            )
        entries.append(entry)
    return entries


# A promote logs its number ("done": false) before the rename that publishes it, and
# {"version": N, "done": true} once the label is in place; records written before these
# marks existed have neither and count as done.
DONE = "done"


def unfinished_versions(entries: list[dict[str, Any]]) -> set[int]:
    """Numbers in the log (:func:`version_log`) whose promote stopped before labelling
    them: never published (killed before the rename), or published and not labelled."""
    started = {e["version"] for e in entries if e.get(DONE) is False}
    return started - {e["version"] for e in entries if e.get(DONE) is True}


def logged_versions(root: Path) -> dict[int, dict[str, Any]]:
    """The log's record of each version (its first record, with run and accuracy) and
    ``state`` for when its folder is gone: ``removed``, or never served at all when its
    promote stopped before labelling it (reserved, never published)."""
    entries = version_log(root)
    unfinished = unfinished_versions(entries)
    records: dict[int, dict[str, Any]] = {}
    for entry in entries:
        if entry["version"] not in records:
            records[entry["version"]] = entry
    return {
        number: {
            **entry,
            "state": "never served (its promote stopped before finishing)"
            if number in unfinished
            else "removed",
        }
        for number, entry in records.items()
    }


def next_version(root: Path) -> int:
    """The lowest number above every one handed out or present; checked before use."""
    used = [entry["version"] for entry in version_log(root)]
    version = max([0, *used, *served_versions(root)]) + 1
    if not is_version(version):
        raise PromoteError(
            f"{root}: every version number up to {MAX_VERSION} is taken (see {VERSION_LOG}); "
            "promote into a new model_name"
        )
    return version


def log_version(root: Path, entry: dict[str, Any]) -> None:
    """Append and fsync one log line before the version appears, so it is never reused."""
    path = root / VERSION_LOG
    try:
        with open(path, "a+b") as handle:
            line = (json.dumps(entry, sort_keys=True) + "\n").encode()
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = b"\n" + line  # end the line a killed promote left unfinished
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:  # a line cut short by a full disk is skipped when read
        raise write_error(path, err) from err


def list_versions(folder: ServingFolder) -> list[dict[str, Any]]:
    """Every version handed out: folders with their run, accuracy and labels, and numbers
    whose folder was removed (saying so where a label still names one)."""
    rows: dict[int, dict[str, Any]] = {}
    root = folder.root
    for number, entry in logged_versions(root).items():
        rows[number] = {
            "version": number,
            "run_id": entry.get("run_id", "?"),
            "test_accuracy": entry.get("verified_test_accuracy"),
            "promoted_at": entry.get("promoted_at", "?"),
            "state": entry["state"],
        }
    labels = current_labels(folder)
    unfinished = unfinished_versions(version_log(root))
    for version in served_versions(root):
        record = read_provenance(root / str(version))
        named = [label for label in LABELS if labels.get(label) == version]
        idle = "unlabelled" + (" (promote stopped: run it again)" if version in unfinished else "")
        rows[version] = {
            "version": version,
            "run_id": record.get("run_id", "?"),
            "test_accuracy": record.get("verified_test_accuracy"),
            "promoted_at": record.get("promoted_at", "?"),
            "state": ",".join(named) or idle,
        }
    for label, version in sorted(dangling_labels(folder).items()):
        row = rows.setdefault(version, {"version": version, "run_id": "?",
                                        "test_accuracy": None, "promoted_at": "?"})  # fmt: skip
        row["state"] = f"removed, yet models.config labels it {label}"
    return [rows[v] for v in sorted(rows)]
