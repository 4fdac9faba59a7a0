"""Promote: versions 1, 2, ...; verified, atomic, locked, with provenance; bad input refused."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from ssgan.cli import compose_config
from ssgan.errors import UserError
from ssgan.promote import promote
from tests.conftest import run_cli


def promote_cfg(smoke_run: dict, serving: Path, *extra: str):
    tracking = smoke_run["cfg"].tracking
    return compose_config(
        "promote",
        [
            f"run_id={smoke_run['summary']['run_id']}",
            f"serving_dir={serving}",
            f"tracking.uri={tracking.uri}",
            f"tracking.artifact_root={tracking.artifact_root}",
            *extra,
        ],
    )


def cli_args(cfg) -> list[str]:
    return [
        f"run_id={cfg.run_id}",
        f"serving_dir={cfg.serving_dir}",
        f"tracking.uri={cfg.tracking.uri}",
    ]


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with a hash of its contents (None for directories)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else ""
        for p in sorted(folder.rglob("*"))
    }


def test_promote_twice_gives_versions_1_and_2_loadable_and_listed(
    smoke_run: dict, tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    first = promote(promote_cfg(smoke_run, serving))
    assert first["version"] == 1 and not first["already"]
    again = promote(promote_cfg(smoke_run, serving))
    assert again == {**first, "already": True}
    second = promote(promote_cfg(smoke_run, serving, "force=true"))
    assert second["version"] == 2
    for version in (1, 2):
        folder = serving / "ssgan" / str(version)
        loaded = tf.saved_model.load(str(folder))
        assert {"serving_default", "predict_images", "classify"} <= set(loaded.signatures)
        record = json.loads((folder / "assets.extra" / "provenance.json").read_text())
        assert record["run_id"] == smoke_run["summary"]["run_id"]
        assert record["config"]["model"]["z_size"] == 16
        assert (
            record["sha256"]["saved_model.pb"]
            == hashlib.sha256((folder / "saved_model.pb").read_bytes()).hexdigest()
        )
        assert record["verified_test_accuracy"] == pytest.approx(
            smoke_run["summary"]["export_test_accuracy"], abs=0.01
        )
    listed = promote(promote_cfg(smoke_run, serving, "list=true"))["versions"]
    assert [row["version"] for row in listed] == [1, 2] and listed[-1]["live"]
    # Numbers are never reused: delete version 2, the next promote is 3.
    import shutil

    shutil.rmtree(serving / "ssgan" / "2")
    assert promote(promote_cfg(smoke_run, serving, "force=true"))["version"] == 3
    client = MlflowClient(tracking_uri=smoke_run["cfg"].tracking.uri)
    run = client.get_run(smoke_run["summary"]["run_id"])
    assert run.data.tags["ssgan.promoted_version"] == "3"
    alias = client.get_model_version_by_alias("ssgan", "production")
    assert alias.run_id == smoke_run["summary"]["run_id"]


def test_cli_list_and_promote_output(smoke_run: dict, tmp_path: Path) -> None:
    cfg = promote_cfg(smoke_run, tmp_path / "serving")
    done = run_cli("ssgan.promote", *cli_args(cfg), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "as version 1" in done.stdout
    listed = run_cli("ssgan.promote", "list=true", f"serving_dir={cfg.serving_dir}", cwd=tmp_path)
    assert listed.returncode == 0 and smoke_run["summary"]["run_id"] in listed.stdout
    assert "<- live" in listed.stdout


@pytest.mark.slow
def test_concurrent_promotes_get_distinct_versions(smoke_run: dict, tmp_path: Path) -> None:
    cfg = promote_cfg(smoke_run, tmp_path / "serving")
    command = [sys.executable, "-m", "ssgan.promote", *cli_args(cfg), "force=true"]
    procs = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    versions = sorted(int(out.split("as version ")[1].split(":")[0]) for out, _ in outputs)
    assert versions == [1, 2]
    for version in versions:
        tf.saved_model.load(str(tmp_path / "serving" / "ssgan" / str(version)))


@pytest.mark.slow
def test_killed_promote_leaves_no_partial_version(smoke_run: dict, tmp_path: Path) -> None:
    cfg = promote_cfg(smoke_run, tmp_path / "serving")
    root = tmp_path / "serving" / "ssgan"
    victim = subprocess.Popen(
        [sys.executable, "-m", "ssgan.promote", *cli_args(cfg)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not list(root.glob(".staging-*")):
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # Whatever the moment of death, TF Serving sees complete versions or none.
    for version in (p for p in root.iterdir() if p.name.isdigit()):
        tf.saved_model.load(str(version))
        assert (version / "assets.extra" / "provenance.json").is_file()
    result = promote(cfg)
    assert result["version"] >= 1
    assert not list(root.glob(".staging-*"))  # the dead promote's staging was cleaned


def _make_run(smoke_run: dict, status: str, model: tf.Module | None = None) -> str:
    tracking = smoke_run["cfg"].tracking
    client = MlflowClient(tracking_uri=tracking.uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    run = client.create_run(experiment.experiment_id)
    client.log_text(run.info.run_id, "model: {}\n", "config/config.yaml")
    if model is not None:
        folder = Path(smoke_run["root"]) / f"bad-model-{run.info.run_id}"
        tf.saved_model.save(model, str(folder))
        client.log_artifacts(run.info.run_id, str(folder), "model")
        client.log_metric(run.info.run_id, "export/test_accuracy", 0.5)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


class _WrongSignature(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
        return {"y": x * 2.0}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not_hex", "not an MLflow run id"),
        ("unknown", "was not found"),
        ("failed", "is FAILED, not FINISHED"),
        ("no_model", "has no exported model"),
        ("bad_model", "signature 'predict_images' is missing"),
        ("min_accuracy", "below min_accuracy=1.0"),
        ("slash_name", "not a plain directory name"),
        ("dotdot_name", "not a plain directory name"),
        ("unwritable", "is not a writable directory"),
    ],
)
def test_bad_input_leaves_serving_dir_untouched(
    smoke_run: dict, tmp_path: Path, case: str, expected: str
) -> None:
    serving = tmp_path / "serving"
    promote(promote_cfg(smoke_run, serving))  # version 1 is live
    before = snapshot(serving)
    extra: list[str] = []
    cfg = promote_cfg(smoke_run, serving)
    if case == "not_hex":
        extra = ["run_id=12345"]
    elif case == "unknown":
        extra = ["run_id=" + "0" * 32]
    elif case == "failed":
        extra = ["run_id=" + _make_run(smoke_run, "FAILED")]
    elif case == "no_model":
        extra = ["run_id=" + _make_run(smoke_run, "FINISHED")]
    elif case == "bad_model":
        module = _WrongSignature()
        extra = ["run_id=" + _make_run(smoke_run, "FINISHED", module)]
    elif case == "min_accuracy":
        extra = ["min_accuracy=1.0", "force=true"]
    elif case == "slash_name":
        extra = ["model_name=../elsewhere"]
    elif case == "dotdot_name":
        extra = ["model_name=a..b"]
    elif case == "unwritable":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        extra = [f"serving_dir={blocker}"]
    with pytest.raises(UserError) as caught:
        promote(compose_config("promote", [*_cfg_overrides(cfg), *extra]))
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert snapshot(serving) == before


def _cfg_overrides(cfg) -> list[str]:
    return [*cli_args(cfg), f"tracking.artifact_root={cfg.tracking.artifact_root}"]


def test_cli_bad_run_id_is_one_line(tmp_path: Path) -> None:
    result = run_cli("ssgan.promote", "run_id=xyz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: run_id=xyz is not an MLflow run id")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "serving").exists()
    assert mlflow.__version__
    assert not os.listdir(tmp_path)
