"""Promote: versions 1, 2, ... verified, staged and renamed atomically under a lock, with
provenance, a run tag and a registry alias; concurrent and killed promotes; bad input
refused with one line and the serving directory left byte for byte as it was.

"Trained runs" are made without the training loop (tests/helpers/promoted_runs.py); the
store and its two runs are conftest.py's module fixtures ``store`` and ``runs``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import tensorflow as tf
from google.protobuf import text_format
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

import ssgan.serving.registry_sync as registry_sync_module
import ssgan.serving.repository as repository_module
from ssgan.cli import compose_config
from ssgan.config import PromoteAppConfig
from ssgan.data import load_data
from ssgan.errors import ConfigError, UserError
from ssgan.serving.promote_checks import validate_promote_config
from ssgan.serving.promotion import describe, format_versions, promote
from ssgan.serving.promotion_result import PromotionResult
from ssgan.serving.repository import ServingFolder
from ssgan.serving.verification import (
    VERIFICATION_IMAGES,
    fingerprint_test_set,
    load_verification_set,
)
from ssgan.serving.version_log import list_versions
from tests.helpers.configs import typed_config
from tests.helpers.faults import DISK_FULL, NOT_PERMITTED, READ_ONLY, failing_writes
from tests.helpers.files import snapshot
from tests.helpers.processes import run_cli
from tests.helpers.promoted_runs import (
    Store,
    accuracy_of,
    export_discriminator,
    log_run,
    overrides,
    promote_cfg,
)

PROVENANCE = Path("assets.extra") / "provenance.json"
GATED_PROMOTE = Path(__file__).parent / "helpers" / "gated_promote.py"


def version_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.isdigit())


# -- promote, again, force, list, numbering, MLflow records ----------------------------------


@pytest.mark.integration
def test_promote_twice_gives_versions_1_and_2_loadable_and_listed(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    root = serving / "ssgan"
    first = promote(promote_cfg(store, serving, runs["a"]))
    assert first.version == 1 and first.path == str(root / "1")
    assert not first.already and first.labels == ["stable"]
    second = promote(promote_cfg(store, serving, runs["b"]))
    assert second.version == 2 and not second.already and second.stable_version == 2
    assert version_dirs(root) == ["1", "2"]
    for version, run_id, seed in ((1, runs["a"], 1), (2, runs["b"], 2)):
        folder = root / str(version)
        loaded = tf.saved_model.load(str(folder))
        assert {"serving_default", "predict_images", "classify"} <= set(loaded.signatures)
        record = json.loads((folder / PROVENANCE).read_text())
        assert record["run_id"] == run_id and record["version"] == version
        assert record["experiment"] == "ssgan" and record["git_commit"] == "a" * 40
        assert record["tracking_uri"] == store.cfg.tracking.uri
        assert record["config"]["data"]["test_size"] == 50
        assert record["metrics"]["export/test_accuracy"] == pytest.approx(
            record["verified_test_accuracy"], abs=1e-6
        )
        # Every copied file is hashed, and the hashes describe what is on disk.
        copied = {
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and p.relative_to(folder) != PROVENANCE
        }
        assert set(record["sha256"]) == copied and "saved_model.pb" in copied
        for name, digest in record["sha256"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
        # Byte for byte the exported model.
        assert (folder / "saved_model.pb").read_bytes() == (
            export_discriminator(store, seed) / "saved_model.pb"
        ).read_bytes()
    # Nothing but versions and dot-files TF Serving ignores; no staging left behind.
    assert sorted(p.name for p in root.iterdir()) == [".promote.lock", ".versions.jsonl", "1", "2"]
    assert sorted(p.name for p in serving.iterdir()) == [".promote.lock", "models.config", "ssgan"]

    listed = promote(promote_cfg(store, serving, "", "list=true")).versions
    assert [(r["version"], r["run_id"], r["state"]) for r in listed] == [
        (1, runs["a"], "unlabelled"),
        (2, runs["b"], "stable"),
    ]
    assert listed[1]["test_accuracy"] == pytest.approx(accuracy_of(store, root / "2"))
    table = format_versions(root, listed)
    assert runs["a"] in table and table.splitlines()[2].endswith("stable")

    client = MlflowClient(tracking_uri=store.cfg.tracking.uri)
    assert client.get_run(runs["b"]).data.tags["ssgan.promoted_version"] == "2"
    production = client.get_model_version_by_alias("ssgan", "production")
    assert production.run_id == runs["b"]


@pytest.mark.integration
def test_same_run_again_does_nothing_unless_forced_and_rollback(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    root = serving / "ssgan"
    promote(promote_cfg(store, serving, runs["a"]))
    promote(promote_cfg(store, serving, runs["b"]))
    before = snapshot(serving)
    cfg = promote_cfg(store, serving, runs["a"])
    again = promote(cfg)
    assert again.version == 1 and again.already and again.recorded == []
    assert "already served as version 1 (not labelled); nothing copied" in describe(cfg, again)
    assert snapshot(serving) == before
    # force=true: the older run again, as a new version that takes the label.
    rollback = promote(promote_cfg(store, serving, runs["a"], "force=true"))
    assert rollback.version == 3 and rollback.stable_version == 3
    assert json.loads((root / "3" / PROVENANCE).read_text())["run_id"] == runs["a"]
    client = MlflowClient(tracking_uri=store.cfg.tracking.uri)
    assert client.get_model_version_by_alias("ssgan", "production").run_id == runs["a"]
    # A deleted version's number is never handed out again, and the listing remembers it.
    shutil.rmtree(root / "3")
    assert promote(promote_cfg(store, serving, runs["a"], "force=true")).version == 4
    states = [
        (r["version"], r["state"])
        for r in list_versions(ServingFolder.of(PromoteAppConfig(serving_dir=str(serving))))
    ]
    assert states == [(1, "unlabelled"), (2, "unlabelled"), (3, "removed"), (4, "stable")]


@pytest.mark.integration
def test_a_promote_that_keeps_the_lock_is_named_not_waited_on_for_good(
    store: Store, runs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promote stopped (SIGSTOP) while it held the folder's lock blocked every other
    promote for good; now one waits LOCK_WAIT_S, then names the holder in one line."""
    import threading

    from ssgan.files import exclusive_lock

    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    held, release = threading.Event(), threading.Event()

    def stopped_promote() -> None:
        with exclusive_lock(serving / "ssgan" / repository_module.LOCK_FILE):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=stopped_promote)
    holder.start()
    monkeypatch.setattr(repository_module, "LOCK_WAIT_S", 0.5)
    try:
        assert held.wait(30)
        before = snapshot(serving)
        with pytest.raises(UserError, match=r"another promote has held .*\.promote\.lock") as err:
            promote(promote_cfg(store, serving, runs["b"]))
        assert f"pid {os.getpid()} on " in str(err.value) and "\n" not in str(err.value)
        assert snapshot(serving) == before
    finally:
        release.set()
        holder.join()
    assert promote(promote_cfg(store, serving, runs["b"])).version == 2  # free again


@pytest.mark.integration
def test_a_damaged_version_log_is_one_line_and_changes_nothing(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """A number TF Serving cannot hold in .versions.jsonl used to be renamed into place
    unlabelled, then a traceback, and every later promote failed the same way."""
    serving = tmp_path / "serving"
    root = serving / "ssgan"
    promote(promote_cfg(store, serving, runs["a"]))
    log = root / ".versions.jsonl"
    good = log.read_text()
    line = len(good.splitlines()) + 1  # version 1's records, then the bad one
    for bad in ('{"version": 99999999999999999999999}', '{"version": -3}', '{"version": true}',
                '["version", 2]'):  # fmt: skip
        log.write_text(good + bad + "\n")
        before = snapshot(serving)
        for args in ((runs["b"], "force=true", "label=canary"), ("", "list=true")):
            with pytest.raises(UserError, match=rf"\.versions\.jsonl line {line} is not") as caught:
                promote(promote_cfg(store, serving, *args))
            assert "\n" not in str(caught.value) and "correct or delete that line" in str(
                caught.value
            )
            assert snapshot(serving) == before, bad  # nothing renamed, labelled or left
    log.write_text(good + '{"version": 7, "run_id"')  # cut short by a kill: skipped
    assert promote(promote_cfg(store, serving, runs["b"], "label=canary")).version == 2


@pytest.mark.integration
def test_must_beat_live_reads_the_live_provenance(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    live = serving / "ssgan" / "1" / PROVENANCE
    promote(promote_cfg(store, serving, runs["a"]))
    record = json.loads(live.read_text())
    # The live version claims a perfect score: a worse model is refused.
    live.write_text(json.dumps({**record, "verified_test_accuracy": 1.0}))
    before = snapshot(serving)
    with pytest.raises(UserError, match=r"below stable version 1's 1\.0000 \(must_beat_live"):
        promote(promote_cfg(store, serving, runs["b"], "must_beat_live=true"))
    assert snapshot(serving) == before
    # The live version claims nothing can be worse: the same model is accepted.
    live.write_text(json.dumps({**record, "verified_test_accuracy": 0.0}))
    assert promote(promote_cfg(store, serving, runs["b"], "must_beat_live=true")).version == 2


@pytest.mark.e2e
def test_verification_uses_what_the_run_recorded_not_the_data(store: Store, tmp_path: Path) -> None:
    """Issue: promoting from another folder regenerated the run's whole data set there (an
    SVHN run would start a download) just to verify the model. The run's recorded
    verification set is used instead; nothing appears in the current folder."""
    config = OmegaConf.merge(store.cfg, {"data": {"root": "data"}})  # relative, as users run
    model_dir = export_discriminator(store, 1)
    accuracy = accuracy_of(store, model_dir)
    run_id = log_run(store, model_dir=model_dir, accuracy=accuracy, config=config)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    serving = tmp_path / "serving"
    done = run_cli("ssgan.promote", *overrides(store, serving, run_id), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert list(elsewhere.iterdir()) == []
    record = json.loads((serving / "ssgan" / "1" / PROVENANCE).read_text())
    assert record["verified_test_accuracy"] == pytest.approx(accuracy)
    assert record["verification_images"] == min(50, VERIFICATION_IMAGES)
    assert record["verification_max_score_difference"] < 1e-5
    assert record["test_images"] == 50
    assert record["test_set_sha256"] == fingerprint_test_set(store.data.test_x, store.data.test_y)


# -- labels: TF Serving's models.config, rollback, the registry aliases -----------------------


def models_config(serving: Path) -> ModelServerConfig:
    """serving/models.config parsed by TF Serving's own message (strict: unknown fields fail)."""
    config = ModelServerConfig()
    text_format.Parse((serving / "models.config").read_text(), config)
    return config


def served_by_config(serving: Path, name: str = "ssgan") -> tuple[str, list[int], dict[str, int]]:
    (entry,) = [e for e in models_config(serving).model_config_list.config if e.name == name]
    assert entry.model_platform == "tensorflow"
    assert entry.model_version_policy.WhichOneof("policy_choice") == "specific"
    return (
        entry.base_path,
        list(entry.model_version_policy.specific.versions),
        dict(entry.version_labels),
    )


def aliases(store: Store, name: str = "ssgan") -> dict[str, str]:
    """Registry alias -> the run id of the registry version it points at."""
    client = MlflowClient(tracking_uri=store.cfg.tracking.uri)
    model = client.get_registered_model(name)
    return {
        alias: client.get_model_version(name, version).run_id
        for alias, version in model.aliases.items()
    }


@pytest.mark.integration
def test_canary_then_promote_to_stable_then_roll_back(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    assert served_by_config(serving) == ("/models/ssgan", [1], {"stable": 1})
    # A new version tried as canary: stable stays on 1, both are served.
    canary = promote(promote_cfg(store, serving, runs["b"], "label=canary"))
    assert canary.version == 2 and canary.labels == ["canary"]
    assert canary.stable_version == 1
    assert served_by_config(serving) == ("/models/ssgan", [1, 2], {"stable": 1, "canary": 2})
    assert {k: aliases(store)[k] for k in ("production", "canary")} == {
        "production": runs["a"],
        "canary": runs["b"],
    }
    # The canary is good: stable moves to it, no new version number.
    cfg = promote_cfg(store, serving, "", "label=stable", "version=2")
    moved = promote(cfg)
    assert describe(cfg, moved).startswith("label stable -> version 2 (was version 1)")
    assert served_by_config(serving)[1:] == ([2], {"stable": 2, "canary": 2})
    assert aliases(store)["production"] == runs["b"]
    # Roll back: stable back to 1. Same command again changes nothing.
    promote(promote_cfg(store, serving, "", "label=stable", "version=1"))
    assert served_by_config(serving)[1:] == ([1, 2], {"stable": 1, "canary": 2})
    assert aliases(store)["production"] == runs["a"]
    before = snapshot(serving)
    cfg = promote_cfg(store, serving, "", "label=stable", "version=1")
    again = promote(cfg)
    assert "already on version 1" in describe(cfg, again) and again.recorded == []
    assert snapshot(serving) == before
    assert version_dirs(serving / "ssgan") == ["1", "2"]
    listed = promote(promote_cfg(store, serving, "", "list=true")).versions
    assert [row["state"] for row in listed] == ["stable", "canary"]


@pytest.mark.integration
def test_a_label_on_a_removed_version_is_dropped_said_listed_and_stops_a_bundle(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """v1 stable, v2 canary, serving/ssgan/2 deleted by hand: the next models.config write
    used to keep canary: 2 (TF Serving told to serve a missing version)."""
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    promote(promote_cfg(store, serving, runs["b"], "label=canary"))
    shutil.rmtree(serving / "ssgan" / "2")
    listed = promote(promote_cfg(store, serving, "", "list=true")).versions
    assert [(r["version"], r["state"]) for r in listed] == [
        (1, "stable"),
        (2, "removed, yet models.config labels it canary"),
    ]
    with pytest.raises(UserError, match="labels canary -> version 2, which is not in") as caught:
        promote(promote_cfg(store, serving, "", f"bundle={tmp_path / 'out'}"))
    assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()
    assert aliases(store)["canary"] == runs["b"]
    cfg = promote_cfg(store, serving, runs["a"], "force=true", "label=stable")
    result = promote(cfg)
    assert result.version == 3 and result.dropped == {"canary": 2}
    assert served_by_config(serving) == ("/models/ssgan", [3], {"stable": 3})
    # The registry alias of the dropped label goes too: models:/ssgan@canary used to keep
    # pointing at version 2, whose folder is gone.
    assert "canary" not in aliases(store) and aliases(store)["production"] == runs["a"]
    assert (
        "label canary dropped from models.config: its version 2 is gone from the serving "
        "folder, and so is registry alias canary (models:/ssgan@canary)"
    ) in describe(cfg, result)


@pytest.mark.integration
def test_models_config_keeps_other_models_and_uses_server_model_dir(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"], "model_name=other"))
    promote(promote_cfg(store, serving, runs["b"], "server_model_dir=/srv/tf/"))
    assert served_by_config(serving, "other") == ("/models/other", [1], {"stable": 1})
    assert served_by_config(serving, "ssgan") == ("/srv/tf/ssgan", [1], {"stable": 1})
    # Written atomically: no temporary file left beside it.
    assert sorted(p.name for p in serving.iterdir()) == [
        ".promote.lock",
        "models.config",
        "other",
        "ssgan",
    ]


@pytest.mark.e2e
def test_label_to_missing_or_unverified_version_is_refused(
    store: Store, runs: dict[str, str], served: Path, tmp_path: Path
) -> None:
    # A folder placed by hand, and a promoted version whose files were changed since.
    hand = served / "ssgan" / "7"
    shutil.copytree(served / "ssgan" / "1", hand)
    (hand / PROVENANCE).unlink()
    tampered = served.parent / "tampered"
    shutil.copytree(served, tampered)
    (tampered / "ssgan" / "1" / "saved_model.pb").write_bytes(b"not the model")
    try:
        for serving, version, words in (
            (served, 9, "version=9: there is no version 9 in"),
            (served, 7, "was not verified by promote (no assets.extra/provenance.json)"),
            (tampered, 1, "saved_model.pb is not the file promote verified"),
        ):
            before = snapshot(serving)
            with pytest.raises(UserError, match=re.escape(words)) as caught:
                promote(promote_cfg(store, serving, "", "label=canary", f"version={version}"))
            assert "\n" not in str(caught.value)
            assert snapshot(serving) == before
    finally:
        shutil.rmtree(hand)
    bad = run_cli(
        "ssgan.promote", f"serving_dir={served}", "label=canary", "version=9", cwd=tmp_path
    )
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: version=9: there is no version 9 in")
    for args, words in (
        (["label=blue", "version=1"], "label=blue is not a valid choice: allowed stable, canary"),
        ([f"run_id={runs['a']}", "version=1"], "run_id and version=1 given together"),
        (["version=-1"], "version=-1 is out of range: allowed >= 0"),
    ):
        bad = run_cli("ssgan.promote", f"serving_dir={served}", *args, cwd=tmp_path)
        assert bad.returncode == 2 and words in bad.stderr and bad.stderr.count("\n") == 1


class DatabaseLockedError(Exception):
    pass


@pytest.mark.integration
def test_rerun_repairs_what_mlflow_refused_to_record(
    store: Store, runs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue: version 9 live on disk, registry alias and run tag still on 8, and a rerun
    said "already served ... nothing done". A rerun must record what is missing."""
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))

    def refuse(*args, **kwargs):
        raise DatabaseLockedError("(sqlite3.OperationalError) database is locked")

    # The store refuses the final recording: tag write, registry version, alias move.
    for name in ("set_run_tags", "registered_version", "set_registry_alias"):
        monkeypatch.setattr(registry_sync_module, name, refuse)
    with pytest.raises(UserError) as caught:
        promote(promote_cfg(store, serving, runs["b"]))
    message = str(caught.value)
    assert "version 2 is in" in message and "database is locked" in message
    assert "run the same command again to record it" in message and "\n" not in message
    client = MlflowClient(tracking_uri=store.cfg.tracking.uri)
    version_2 = str((serving / "ssgan" / "2").resolve())
    assert client.get_run(runs["b"]).data.tags.get("ssgan.promoted_path") != version_2
    assert aliases(store)["production"] == runs["a"]
    monkeypatch.undo()
    # The same command again: nothing copied, the missing records written.
    cfg = promote_cfg(store, serving, runs["b"])
    before = snapshot(serving)
    again = promote(cfg)
    assert again.already and again.version == 2
    assert snapshot(serving) == before
    text = describe(cfg, again)
    assert "recorded in MLflow: run tag ssgan.promoted_version=2" in text
    assert "alias production -> registry version" in text
    tags = client.get_run(runs["b"]).data.tags
    assert tags["ssgan.promoted_version"] == "2" and tags["ssgan.promoted_path"] == version_2
    assert aliases(store)["production"] == runs["b"]
    # Repaired means complete: a third run writes nothing.
    assert promote(cfg).recorded == []
    # A label move refused by MLflow is repaired the same way.
    monkeypatch.setattr(registry_sync_module, "set_registry_alias", refuse)
    with pytest.raises(UserError, match="recording it in MLflow failed"):
        promote(promote_cfg(store, serving, "", "label=stable", "version=1"))
    assert served_by_config(serving)[2] == {"stable": 1}
    monkeypatch.undo()
    repaired = promote(promote_cfg(store, serving, "", "label=stable", "version=1"))
    assert repaired.recorded and aliases(store)["production"] == runs["a"]


@pytest.mark.integration
def test_a_rerun_removes_a_registry_version_registered_twice(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """Issue 32 item 7: a race registered serving version 1 twice, and a rerun moved the
    aliases to the lower registry version but left both. It keeps the lowest only."""
    serving = tmp_path / "serving"
    root = serving / "twice"
    cfg = promote_cfg(store, serving, runs["a"], "model_name=twice")
    promote(cfg)
    client = MlflowClient(tracking_uri=store.cfg.tracking.uri)
    (kept,) = registry_versions(store, "twice", root)["1"]
    first = client.get_model_version("twice", kept)
    # What the racing promote left: another registry version with the same tags, and the
    # alias on it.
    extra = client.create_model_version(
        "twice", source=first.source, run_id=runs["a"], tags=first.tags
    ).version
    client.set_registered_model_alias("twice", "production", extra)
    again = promote(cfg)
    assert again.already and registry_versions(store, "twice", root) == {"1": [kept]}
    assert client.get_registered_model("twice").aliases == {"production": kept}
    assert f"removed registry version {extra} (duplicate of version 1)" in describe(cfg, again)
    assert promote(cfg).recorded == []


@pytest.mark.integration
def test_a_registered_model_created_meanwhile_by_another_promote_is_used(
    store: Store, runs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 32 item 12: two first promotes into a new model name at once (two serving
    folders sharing the registry, say): the one that found no registered model and then
    lost the race to create it exited 2 "Registered Model ... already exists"."""
    create = MlflowClient.create_registered_model
    other = MlflowClient(tracking_uri=store.cfg.tracking.uri)

    def lose_the_race(self: MlflowClient, name: str, *args, **kwargs):
        create(other, name)  # the other promote gets there first
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "create_registered_model", lose_the_race)
    serving = tmp_path / "serving"
    result = promote(promote_cfg(store, serving, runs["a"], "model_name=meanwhile"))
    assert result.version == 1 and not result.already
    (registered,) = registry_versions(store, "meanwhile", serving / "meanwhile")["1"]
    assert other.get_registered_model("meanwhile").aliases == {"production": registered}


@pytest.mark.integration
def test_the_registry_version_is_linked_from_its_logged_model(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """Issue 33 item 2: on the SQLite store the LoggedModel had no ``mlflow.modelVersions``
    tag (a tracking server sets it, the SQL registry store does not), so the Models tab
    showed no registered version. The tag as the server writes it, once; a lost one is
    written again by a rerun."""
    serving = tmp_path / "serving"
    cfg = promote_cfg(store, serving, runs["a"], "model_name=linked")
    promote(cfg)
    client = MlflowClient(tracking_uri=store.cfg.tracking.uri)
    version = client.get_model_version_by_alias("linked", "production")
    model_id = version.source.removeprefix("models:/")
    assert model_id.startswith("m-")
    wanted = [{"name": "linked", "version": int(version.version)}]

    def listed() -> list:  # this model's entries (other tests promote the same run)
        tags = client.get_logged_model(model_id).tags
        entries = json.loads(tags.get("mlflow.modelVersions", "[]"))
        return [entry for entry in entries if entry["name"] == "linked"]

    assert listed() == wanted
    assert promote(cfg).already and listed() == wanted  # a rerun does not list it twice
    client.delete_logged_model_tag(model_id, "mlflow.modelVersions")
    promote(cfg)
    assert listed() == wanted


# -- stale staging, concurrency and kill -9 --------------------------------------------------


@pytest.mark.unit
def test_stale_staging_is_removed_only_when_its_owner_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "ssgan"
    live, dead, foreign = (root / f".staging-{name}" for name in ("live", "dead", "foreign"))
    for folder in (live, dead, foreign):
        (folder / "model").mkdir(parents=True)
    (dead / "owner.lock").touch()
    with open(live / "owner.lock", "a+") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX)
        repository_module._remove_stale_staging(root)
        assert live.exists() and not dead.exists() and not foreign.exists()
    repository_module._remove_stale_staging(root)
    assert not live.exists()


def promote_process(store: Store, serving: Path, run_id: str, gate: Path) -> subprocess.Popen:
    """A promote in its own process, held after each copied file while ``gate`` exists
    (tests/helpers/gated_promote.py injects the hook)."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, str(GATED_PROMOTE), str(gate), *overrides(store, serving, run_id)],
        cwd=store.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_copies(root: Path, count: int, procs: list[subprocess.Popen]) -> None:
    """Until ``count`` staging folders each hold a copied file (or a process ended)."""
    deadline = time.time() + 240
    while time.time() < deadline and all(p.poll() is None for p in procs):
        started = [s for s in root.glob(".staging-*") if any(s.glob("model/*"))]
        if len(started) >= count:
            return
        time.sleep(0.01)
    raise AssertionError([p.communicate() for p in procs])


@pytest.mark.e2e
def test_concurrent_promotes_get_distinct_versions(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    root = serving / "ssgan"
    gate = tmp_path / "gate"
    gate.touch()
    procs = [promote_process(store, serving, runs[name], gate) for name in ("a", "b")]
    # Both are mid-copy at once; released together, they race to number and rename.
    wait_for_copies(root, 2, procs)
    gate.unlink()
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    versions = []
    for (out, _), name in zip(outputs, ("a", "b"), strict=True):
        assert out.startswith(f"promoted run {runs[name]} as version "), out
        versions.append(int(out.split("as version ")[1].split(":")[0]))
    assert sorted(versions) == [1, 2] and version_dirs(root) == ["1", "2"]
    for version, name in zip(versions, ("a", "b"), strict=True):
        folder = root / str(version)
        tf.saved_model.load(str(folder))
        record = json.loads((folder / PROVENANCE).read_text())
        assert record["run_id"] == runs[name]
        for file, digest in record["sha256"].items():  # not overwritten by the other
            assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == digest
    assert not list(root.glob(".staging-*"))


RACING_PROMOTES = Path(__file__).parent / "helpers" / "racing_promotes.py"
RACE_ROUNDS = 6


def registry_versions(store: Store, name: str, root: Path) -> dict[str, list[str]]:
    """Serving version -> the registry versions of model ``name`` that carry it for the
    serving folder ``root`` (its ``ssgan.serving_version`` and ``ssgan.serving_root`` tags)."""
    client = MlflowClient(tracking_uri=store.cfg.tracking.uri)
    found: dict[str, list[str]] = {}
    for entry in client.search_model_versions(f"name='{name}'"):
        if entry.tags.get("ssgan.serving_root") == str(root.resolve()):
            found.setdefault(entry.tags["ssgan.serving_version"], []).append(entry.version)
    return found


@pytest.mark.e2e
def test_racing_promotes_register_each_serving_version_once(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """Issue 32 items 7 and 12: two promotes of different runs into one model name, stable
    and canary, released together at the copy step, sometimes registered one serving
    version twice in the MLflow registry, and two first promotes into a new model name
    could fail with "Registered Model ... already exists". Each round promotes into a new
    model name, so every round races both."""
    serving = tmp_path / "serving"
    gates = tmp_path / "gates"
    gates.mkdir()
    for number in range(RACE_ROUNDS):
        (gates / str(number)).touch()
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(RACING_PROMOTES),
                str(gates),
                str(RACE_ROUNDS),
                *overrides(store, serving, runs[name], f"label={label}"),
            ],
            cwd=store.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name, label in (("a", "stable"), ("b", "canary"))
    ]
    for number in range(RACE_ROUNDS):
        # Both are mid-copy in this round's model; released together, they race to
        # number, label and register.
        wait_for_copies(serving / f"race{number}", 2, procs)
        (gates / str(number)).unlink()
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    client = MlflowClient(tracking_uri=store.cfg.tracking.uri)
    wrong = []  # every round is checked, so a failure says how many rounds went wrong
    for number in range(RACE_ROUNDS):
        name = f"race{number}"
        said = [out.splitlines()[number] for out, _ in outputs]
        if not all(line.startswith("promoted run ") for line in said):
            wrong.append((number, said))
            continue
        labels = served_by_config(serving, name)[2]
        registered = registry_versions(store, name, serving / name)
        one_each = registered.keys() == {"1", "2"} and all(
            len(found) == 1 for found in registered.values()
        )
        aliased = client.get_registered_model(name).aliases
        if (
            sorted(labels.values()) != [1, 2]
            or not one_each
            or aliased
            != {
                "production": registered[str(labels["stable"])][0],
                "canary": registered[str(labels["canary"])][0],
            }
        ):
            wrong.append((number, labels, registered, aliased))
    assert wrong == [], f"{len(wrong)} of {RACE_ROUNDS} rounds went wrong"


@pytest.mark.e2e
def test_killed_mid_copy_leaves_no_partial_version(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    root = serving / "ssgan"
    promote(promote_cfg(store, serving, runs["a"]))
    served_before = snapshot(root / "1")
    gate = tmp_path / "gate"
    gate.touch()
    victim = promote_process(store, serving, runs["b"], gate)
    wait_for_copies(root, 1, [victim])
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # Mid-copy: part of the model is in staging, no new version exists, the live one is intact.
    staged = list(root.glob(".staging-*"))
    assert len(staged) == 1 and not (staged[0] / "model" / PROVENANCE).exists()
    assert version_dirs(root) == ["1"] and snapshot(root / "1") == served_before
    result = promote(promote_cfg(store, serving, runs["b"]))
    assert result.version == 2
    tf.saved_model.load(str(root / "2"))
    assert not list(root.glob(".staging-*"))  # the dead promote's staging was cleaned


HELD_PROMOTE = Path(__file__).parent / "helpers" / "held_promote.py"


def kill_promote_at(point: str, store: Store, serving: Path, *args: str) -> None:
    """A promote process stopped at ``point`` (tests/helpers/held_promote.py), then killed
    there with SIGKILL."""
    ready = serving.parent / f"ready-{point}"
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    victim = subprocess.Popen(
        [sys.executable, str(HELD_PROMOTE), str(ready), point, *overrides(store, serving, *args)],
        cwd=store.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 240
    while not ready.exists():
        assert victim.poll() is None and time.time() < deadline, victim.communicate()
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()


def states(store: Store, serving: Path) -> list[tuple[int, str]]:
    listed = promote(promote_cfg(store, serving, "", "list=true")).versions
    return [(row["version"], row["state"]) for row in listed]


@pytest.mark.e2e
def test_killed_before_its_label_the_same_command_again_applies_it(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """Issue 32 item 11: a promote killed between its version's rename and its label;
    the same command again said "already served ... (not labelled)" and labelled nothing."""
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    kill_promote_at("label", store, serving, runs["b"], "label=canary")
    assert version_dirs(serving / "ssgan") == ["1", "2"]
    assert served_by_config(serving)[2] == {"stable": 1}
    assert states(store, serving) == [
        (1, "stable"),
        (2, "unlabelled (promote stopped: run it again)"),
    ]
    cfg = promote_cfg(store, serving, runs["b"], "label=canary")
    again = promote(cfg)
    assert again.version == 2 and again.labels == ["canary"]
    assert describe(cfg, again).startswith(f"promoted run {runs['b']} as version 2: ")
    assert describe(cfg, again).endswith("(labelled canary)")
    assert served_by_config(serving)[1:] == ([1, 2], {"stable": 1, "canary": 2})
    assert aliases(store)["canary"] == runs["b"] and aliases(store)["production"] == runs["a"]
    assert version_dirs(serving / "ssgan") == ["1", "2"]
    # Finished: a third run is the ordinary "already served", and a label moved away
    # since is not put back.
    promote(promote_cfg(store, serving, "", "label=canary", "version=1"))
    third = promote(cfg)
    assert third.already and third.version == 2 and third.labels == []
    assert served_by_config(serving)[2] == {"stable": 1, "canary": 1}


@pytest.mark.e2e
def test_killed_before_its_rename_the_number_is_not_listed_as_removed(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """Issue 32 item 11: a promote killed after logging its number, before the rename:
    list=true showed that number, never served, as "removed"."""
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    kill_promote_at("rename", store, serving, runs["b"])
    assert version_dirs(serving / "ssgan") == ["1"]
    never = (2, "never served (its promote stopped before finishing)")
    assert states(store, serving) == [(1, "stable"), never]
    # The number stays handed out; the same command again promotes into the next one.
    assert promote(promote_cfg(store, serving, runs["b"])).version == 3
    assert states(store, serving) == [(1, "unlabelled"), never, (3, "stable")]
    assert not list((serving / "ssgan").glob(".staging-*"))


@pytest.mark.integration
def test_a_full_disk_during_the_copy_is_one_line_and_changes_nothing(
    store: Store, runs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 32 item 13: the serving disk filling up during the copy was a traceback."""
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    before = snapshot(serving)
    # The staging folder's lock file and two model files fit; then the disk is full.
    failing_writes(monkeypatch, serving, DISK_FULL, allowed=3, name_contains="/.staging-")
    with pytest.raises(UserError) as caught:
        promote(promote_cfg(store, serving, runs["b"]))
    message = str(caught.value)
    assert re.search(r"^cannot write \S*/ssgan/\.staging-\w+/model\S* \(No space left", message)
    assert "free space on the disk of" in message and "run the same command again" in message
    assert "\n" not in message and snapshot(serving) == before
    monkeypatch.undo()
    assert promote(promote_cfg(store, serving, runs["b"])).version == 2


@pytest.mark.integration
def test_an_unwritable_models_config_is_one_line_and_the_rerun_labels(
    store: Store, runs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 32 item 13: models.config that cannot be written after the version's rename
    was a traceback, and the rerun said "already served (not labelled)" without labelling."""
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    config_before = (serving / "models.config").read_bytes()
    failing_writes(monkeypatch, serving, NOT_PERMITTED, name_contains=".models.config")
    cfg = promote_cfg(store, serving, runs["b"], "label=canary")
    with pytest.raises(UserError) as caught:
        promote(cfg)
    message = str(caught.value)
    assert message.startswith(f"version 2 is in {serving / 'ssgan' / '2'}, not labelled canary ")
    assert f"cannot write {serving / 'models.config'} (Permission denied)" in message
    assert message.endswith("then run the same command again to label it") and "\n" not in message
    assert (serving / "models.config").read_bytes() == config_before  # the old one, whole
    monkeypatch.undo()
    again = promote(cfg)
    assert again.version == 2 and again.labels == ["canary"]
    assert served_by_config(serving)[2] == {"stable": 1, "canary": 2}
    assert aliases(store)["canary"] == runs["b"]


@pytest.mark.integration
def test_a_label_move_in_a_read_only_serving_folder_is_one_line_and_changes_nothing(
    store: Store, runs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 32 item 13: a label move in a read-only serving folder was a traceback."""
    serving = tmp_path / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    promote(promote_cfg(store, serving, runs["b"], "label=canary"))
    before, aliased = snapshot(serving), aliases(store)
    failing_writes(monkeypatch, serving, READ_ONLY)
    with pytest.raises(UserError) as caught:
        promote(promote_cfg(store, serving, "", "label=stable", "version=2"))
    message = str(caught.value)
    assert message.startswith("cannot ") and "(Read-only file system): make " in message
    assert str(serving) in message and "writable, then run the same command again" in message
    assert "\n" not in message and snapshot(serving) == before and aliases(store) == aliased
    monkeypatch.undo()
    promote(promote_cfg(store, serving, "", "label=stable", "version=2"))
    assert served_by_config(serving)[2] == {"stable": 2, "canary": 2}


# -- bad input: one line, nothing changed ----------------------------------------------------


class WrongSignature(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
        return {"y": x * 2.0}


@pytest.fixture(scope="module")
def served(store: Store, runs: dict[str, str], tmp_path_factory) -> Path:
    """A serving directory whose live version 1 holds run a."""
    serving = tmp_path_factory.mktemp("served") / "serving"
    promote(promote_cfg(store, serving, runs["a"]))
    return serving


def bad_case(case: str, store: Store, runs: dict[str, str], scratch: Path) -> list[str]:
    """Overrides (after the defaults) that make promote refuse."""
    if case == "not_hex":
        return ["run_id=12345"]
    if case == "upper_hex":
        return ["run_id=" + "A" * 32]
    if case == "unknown":
        return ["run_id=" + "0" * 32]
    if case == "failed":
        model_dir = export_discriminator(store, 1)
        return ["run_id=" + log_run(store, model_dir=model_dir, accuracy=0.1, status="FAILED")]
    if case == "no_model":
        return ["run_id=" + log_run(store, model_dir=None, accuracy=0.1)]
    if case == "wrong_signature":
        folder = scratch / "wrong"
        tf.saved_model.save(WrongSignature(), str(folder))
        return ["run_id=" + log_run(store, model_dir=folder, accuracy=0.1, verified_with=None)]
    if case == "wrong_accuracy":
        model_dir = export_discriminator(store, 1)
        logged = accuracy_of(store, model_dir) + 0.5
        return ["run_id=" + log_run(store, model_dir=model_dir, accuracy=logged)]
    if case == "wrong_model":  # the verification set recorded for another model
        model_dir, other = export_discriminator(store, 1), export_discriminator(store, 2)
        accuracy = accuracy_of(store, other)
        return [
            "run_id=" + log_run(store, model_dir=model_dir, accuracy=accuracy, verified_with=other)
        ]
    if case == "no_verification":
        model_dir = export_discriminator(store, 1)
        accuracy = accuracy_of(store, model_dir)
        return [
            "run_id=" + log_run(store, model_dir=model_dir, accuracy=accuracy, verified_with=None)
        ]
    if case == "min_accuracy":
        return [f"run_id={runs['b']}", "min_accuracy=1.0"]
    if case == "slash_name":
        return [f"run_id={runs['b']}", "model_name=a/b"]
    if case == "dotdot_name":
        return [f"run_id={runs['b']}", "model_name=.."]
    if case == "file_as_serving_dir":
        blocker = scratch / "a-file"
        blocker.write_text("not a directory")
        return [f"run_id={runs['b']}", f"serving_dir={blocker}"]
    if case == "file_as_model_dir":
        return [f"run_id={runs['b']}", "model_name=README"]
    if case == "read_only_fs":
        return [f"run_id={runs['b']}", "serving_dir=/sys/ssgan-serving"]
    raise AssertionError(case)


BAD_INPUT = {
    "not_hex": "run_id=12345 is not an MLflow run id: expected 32 lowercase hex",
    "upper_hex": "is not an MLflow run id",
    "unknown": "was not found in the tracking store",
    "failed": "is FAILED, not FINISHED",
    "no_model": "has no exported model (no 'model/' artifact)",
    "wrong_signature": "fails verification: model/: signature 'predict_images' is missing",
    "wrong_accuracy": "but its verification set records",
    "wrong_model": "does not give the scores recorded for its 50 verification images",
    "no_verification": "recorded no verification set ('verification/verification.npz')",
    "min_accuracy": "is below min_accuracy=1.0: not promoted",
    "slash_name": "model_name=a/b is not a plain directory name",
    "dotdot_name": "model_name=.. is not a plain directory name",
    "file_as_serving_dir": "a-file is not a directory): choose another serving_dir",
    "file_as_model_dir": "README is not a directory): choose another serving_dir",
    "read_only_fs": "serving_dir: cannot write /sys/ssgan-serving/ssgan",
}


def writable(folder: str) -> bool:
    """Whether root can create a file in ``folder`` (sysfs refuses even root)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.mark.integration
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_changes_nothing(
    case: str, store: Store, runs: dict[str, str], served: Path, tmp_path: Path
) -> None:
    if case == "file_as_model_dir":
        (served / "README").write_text("the folder TF Serving watches\n")
    if case == "read_only_fs" and writable("/sys"):
        pytest.skip("/sys accepts new files here: no read-only file system to test with")
    extra = bad_case(case, store, runs, tmp_path)
    before_serving, before_scratch = snapshot(served), snapshot(tmp_path)
    with pytest.raises(UserError) as caught:
        promote(promote_cfg(store, served, runs["a"], *extra))
    message = str(caught.value)
    assert BAD_INPUT[case] in message, message
    assert "\n" not in message
    assert snapshot(served) == before_serving
    assert snapshot(tmp_path) == before_scratch


@pytest.mark.e2e
def test_cli_list_and_bad_run_id(store: Store, runs: dict[str, str], tmp_path: Path) -> None:
    serving = tmp_path / "serving"
    cfg = promote_cfg(store, serving, runs["a"])
    assert describe(cfg, promote(cfg)) == (
        f"promoted run {runs['a']} as version 1: {serving / 'ssgan' / '1'} (labelled stable)"
    )
    listed = run_cli("ssgan.promote", f"serving_dir={serving}", "list=true", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = [line for line in listed.stdout.splitlines() if runs["a"] in line]
    assert len(row) == 1 and row[0].split()[0] == "1" and row[0].endswith("stable")
    before = snapshot(tmp_path)
    bad = run_cli("ssgan.promote", "run_id=xyz", f"serving_dir={serving}", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: run_id=xyz is not an MLflow run id")
    assert bad.stderr.count("\n") == 1
    assert snapshot(tmp_path) == before


@pytest.mark.unit
def test_validate_rejects_bad_numbers_and_allows_list_without_run() -> None:
    cfg = compose_config("promote", ["list=true"])
    validate_promote_config(cfg)
    for override, words in (
        ("min_accuracy=1.5", "min_accuracy=1.5 is out of range"),
        ("accuracy_tolerance=-0.1", "accuracy_tolerance=-0.1 is out of range"),
        ("serving_dir=' '", "serving_dir is empty"),
        ("+tracking.token=x", "unknown key 'tracking.token': allowed keys of tracking are uri,"),
        ("+labels=x", "unknown key 'labels': allowed top-level keys are run_id, model_name,"),
    ):
        with pytest.raises(ConfigError, match=words):
            validate_promote_config(compose_config("promote", ["run_id=" + "0" * 32, override]))


@pytest.mark.unit
def test_registry_alias_is_configurable_and_checked() -> None:
    from ssgan.cli import compose_config
    from ssgan.errors import ConfigError
    from ssgan.serving.promote_checks import validate_promote_config

    ok = compose_config("promote", ["run_id=" + "a" * 32, "alias=staging"])
    validate_promote_config(ok)
    for bad in ("latest", "v2", "9lives", "a b"):
        cfg = compose_config("promote", ["run_id=" + "a" * 32, f"alias='{bad}'"])
        with pytest.raises(ConfigError, match="not a usable registry alias"):
            validate_promote_config(cfg)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_trained_run_records_its_verification_set_and_promotes_from_anywhere(
    smoke_run: dict, tmp_path: Path
) -> None:
    """Training logs verification/verification.npz; promote verifies a real run with it,
    from a folder without the run's data, and creates no data there."""
    cfg, run_id = smoke_run["cfg"], smoke_run["summary"].run_id
    data = load_data(typed_config(cfg).data, cfg.model.num_classes)
    with tempfile.TemporaryDirectory() as scratch:
        local = MlflowClient(tracking_uri=cfg.tracking.uri).download_artifacts(
            run_id, "verification/verification.npz", scratch
        )
        record = load_verification_set(Path(local))
    count = min(len(data.test_y), VERIFICATION_IMAGES)
    assert (record["images"] == data.test_x[:count]).all()
    assert (record["labels"] == data.test_y[:count]).all()
    assert record["test_set_sha256"] == fingerprint_test_set(data.test_x, data.test_y)
    run = MlflowClient(tracking_uri=cfg.tracking.uri).get_run(run_id)
    assert record["test_accuracy"] == pytest.approx(run.data.metrics["export/test_accuracy"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    promoted = run_cli(
        "ssgan.promote",
        f"run_id={run_id}",
        f"serving_dir={tmp_path / 'serving'}",
        f"tracking.uri={cfg.tracking.uri}",
        f"tracking.artifact_root={cfg.tracking.artifact_root}",
        cwd=elsewhere,
    )
    assert promoted.returncode == 0, promoted.stderr
    assert list(elsewhere.iterdir()) == []
    provenance = json.loads((tmp_path / "serving/ssgan/1" / PROVENANCE).read_text())
    assert provenance["verification_images"] == count
    assert provenance["verification_max_score_difference"] <= 1e-5


@pytest.mark.unit
def test_each_promotion_result_is_worded_as_the_command_printed_it() -> None:
    cfg = PromoteAppConfig(run_id="r" * 32)
    fresh = PromotionResult("promote", version=3, path="serving/ssgan/3", labels=["stable"],
                            recorded=["tag"], dropped={"canary": 2},
                            removed_aliases=["canary"])  # fmt: skip
    assert describe(cfg, fresh).splitlines() == [
        f"promoted run {'r' * 32} as version 3: serving/ssgan/3 (labelled stable)",
        "label canary dropped from models.config: its version 2 is gone from the serving "
        "folder, and so is registry alias canary (models:/ssgan@canary) (point it again with "
        "label=canary version=<N>)",
    ]
    again = PromotionResult("promote", version=3, already=True, recorded=["alias production"])
    assert describe(cfg, again).splitlines() == [
        f"run {'r' * 32} is already served as version 3 (not labelled); nothing copied (move a "
        "label to it with version=3 label=<label>; force=true promotes it again as a new "
        "version)",
        "recorded in MLflow: alias production",
    ]
    moved = PromotionResult("label", label="stable", version=1, previous=2, config="m.config")
    assert describe(cfg, moved) == "label stable -> version 1 (was version 2): m.config"
    bundle = {"path": "out", "build": "docker build", "apply": "kubectl apply", "removed": ["x"]}
    assert describe(cfg, PromotionResult("bundle", bundle=bundle)).splitlines() == [
        "removed x, left by a killed bundle",
        "wrote the hand-over bundle out",
        "  build: docker build",
        "  apply: kubectl apply",
    ]
