"""Version numbers of a serving folder, as plain files: what TF Serving accepts, the
number the next promote takes (never one handed out before), the version log read and
appended after a kill, and the table ``list=true`` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssgan.serving.promotion import format_versions
from ssgan.serving.repository import (
    PROVENANCE,
    PromoteError,
    ServingFolder,
    is_version,
    served_versions,
)
from ssgan.serving.version_log import (
    VERSION_LOG,
    list_versions,
    log_version,
    next_version,
    version_log,
)

pytestmark = pytest.mark.unit

# What list=true prints for the folder of the last test: version 1 promoted and removed
# since, 2 promoted, 3 placed by hand.
LISTED = """\
version  run_id                            test acc  promoted at (UTC)          state
      1  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa    0.5000  2026-01-01T00:00:00+00:00  removed
      2  bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb    0.8750  2026-01-02T00:00:00+00:00  unlabelled
      3  ?                                        ?  ?                          unlabelled"""


def folders(root: Path, *names: str) -> None:
    for name in names:
        (root / name).mkdir(parents=True)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (1, True),
        (2**63 - 1, True),
        (0, False),
        (-1, False),
        (2**63, False),
        (True, False),
        (3.0, False),
        ("3", False),
        (None, False),
    ],
)
def test_a_version_is_an_integer_from_1_to_2_to_the_63_minus_1(value, accepted: bool) -> None:
    assert is_version(value) is accepted


def test_served_versions_are_number_folders_in_numeric_order(tmp_path: Path) -> None:
    folders(tmp_path, "10", "2", "1", ".staging-x", "latest", "99999999999999999999")
    (tmp_path / "3").write_text("a file, not a version")
    assert served_versions(tmp_path) == [1, 2, 10]
    assert served_versions(tmp_path / "absent") == []


def test_the_next_version_is_above_every_number_handed_out(tmp_path: Path) -> None:
    assert next_version(tmp_path) == 1
    folders(tmp_path, "1", "2")
    assert next_version(tmp_path) == 3
    # 5 was handed out and its folder removed since; a kill cut the last line short.
    (tmp_path / VERSION_LOG).write_text('{"version": 5}\n{"version": 9, "run')
    assert next_version(tmp_path) == 6


def test_a_bad_version_record_is_one_line_naming_it(tmp_path: Path) -> None:
    long = json.dumps({"version": 0, "run_id": "a" * 90})
    (tmp_path / VERSION_LOG).write_text('{"version": 1}\n' + long + "\n")
    with pytest.raises(PromoteError) as refused:
        version_log(tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / VERSION_LOG} line 2 is not a version record (")
    assert f"({long[:77]}...): versions are integers from 1 to {2**63 - 1}" in message
    assert "correct or delete that line" in message and "\n" not in message


def test_logging_a_version_first_ends_a_line_a_kill_cut_short(tmp_path: Path) -> None:
    (tmp_path / VERSION_LOG).write_text('{"version": 1}\n{"version": 2, "run')
    log_version(tmp_path, {"version": 3, "run_id": "c"})
    assert (tmp_path / VERSION_LOG).read_text().splitlines() == [
        '{"version": 1}', '{"version": 2, "run', '{"run_id": "c", "version": 3}'
    ]  # fmt: skip
    assert [entry["version"] for entry in version_log(tmp_path)] == [1, 3]


def test_the_listing_keeps_removed_versions_and_folders_placed_by_hand(tmp_path: Path) -> None:
    folder = ServingFolder(tmp_path, "ssgan")
    first = {"run_id": "a" * 32, "verified_test_accuracy": 0.5,
             "promoted_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    second = {"run_id": "b" * 32, "verified_test_accuracy": 0.875,
              "promoted_at": "2026-01-02T00:00:00+00:00"}  # fmt: skip
    folders(folder.root, "2/assets.extra", "3")
    (folder.root / "2" / PROVENANCE).write_text(json.dumps(second))
    log_version(folder.root, {"version": 1, **first})  # its folder was removed since
    log_version(folder.root, {"version": 2, **second})
    assert format_versions(folder.root, list_versions(folder)) == LISTED
    assert format_versions(tmp_path / "empty", []) == f"no versions in {tmp_path / 'empty'}"
