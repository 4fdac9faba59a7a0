"""A full temp folder (``TMPDIR``) is named as the full one: in training's out-of-disk line,
and where a model or artifact is downloaded into it (promote, export), which used to
read as a model that is not in the tracking store."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import tensorflow as tf

from ssgan.cli import compose_config
from ssgan.errors import DiskFullError, disk_full_reason
from ssgan.tracking.mlflow_model import download_run_model
from ssgan.tracking.runs import download_artifacts
from ssgan.tracking.store import TrackingError, TrackingStore
from tests.helpers.configs import tiny_overrides, typed_config


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp folder of the test's own, as ``TMPDIR`` would make it."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _full(path: Path) -> None:
    """``path`` becomes a file every write to fails with ENOSPC, as on a full disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/full")


@pytest.mark.unit
def test_a_disk_full_error_names_the_temp_folder_only_when_it_struck_there(
    temp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = f"No space left on device in the temp folder {temp} (TMPDIR, on the file system at "
    tf_style = tf.errors.ResourceExhaustedError(
        None, None, f"{temp}/ssgan-x/saved_model/saved_model.pb; No space left on device"
    )  # TF's file errors: the path and the OS's words, no errno
    copied = OSError(errno.ENOSPC, "No space left on device")
    copied.filename2 = str(temp / "ssgan-x" / "MLmodel")
    for err in (tf_style, copied):
        assert str(disk_full_reason(err)).startswith(named), err
    bare = OSError(errno.ENOSPC, "No space left on device")  # a write() names no file
    elsewhere = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "mlruns" / "x"))
    assert disk_full_reason(bare) == disk_full_reason(elsewhere) == "No space left on device"
    assert str(disk_full_reason(bare, written=temp / "ssgan-promote-1")).startswith(named)
    assert disk_full_reason(ValueError("no")) is None

    # No file named, but the temp folder's file system is (nearly) out of space now.
    usage = shutil.disk_usage(temp)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=4096))
    reason = str(disk_full_reason(bare))
    assert reason.startswith(named) and reason.endswith("; 4.0 KiB free now)"), reason


@pytest.mark.unit
def test_a_full_disk_of_its_own_inside_the_temp_folder_is_not_the_temp_folder(
    temp: Path, tmp_path: Path
) -> None:
    """A folder under the temp folder that is another file system (``/tmp/x`` a disk of
    its own, or a link to one) filling up is not the temp folder filling up: the line
    used to send the user to free the temp folder, which had gigabytes free."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == temp.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    elsewhere = Path(tempfile.mkdtemp(dir=shm))
    try:
        (temp / "disk").symlink_to(elsewhere)
        tf_style = tf.errors.ResourceExhaustedError(
            None, None, f"{temp}/disk/ckpt-12_temp/part-0.data; No space left on device"
        )
        assert disk_full_reason(tf_style) == "No space left on device"
    finally:
        shutil.rmtree(elsewhere)
    if os.geteuid() != 0:
        return  # mounting a disk needs root: the link above stands for it
    mounted = temp / "mounted"
    mounted.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mounted)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        checkpoint = tf.train.Checkpoint(v=tf.Variable(tf.zeros([100_000])))
        with pytest.raises(tf.errors.OpError) as caught:
            checkpoint.write(str(mounted / "ckpt"))  # 400 kB into 64 kB, as TF reports it
        assert disk_full_reason(caught.value) == "No space left on device"
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


@pytest.mark.integration
def test_training_out_of_space_in_the_temp_folder_names_it(
    temp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssgan.training import run

    def export_fails(model, checkpoint, export_dir, **kwargs) -> None:
        # What TF raises when the SavedModel's file cannot be written (a full disk).
        file = Path(export_dir) / "variables" / "variables.data-00000-of-00001"
        raise tf.errors.ResourceExhaustedError(None, None, f"{file}; No space left on device")

    monkeypatch.setattr(run, "export_from_checkpoint", export_fails)
    with pytest.raises(DiskFullError) as caught:
        run.train(compose_config("config", tiny_overrides(tmp_path)))
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(
        f"out of disk space (No space left on device in the temp folder {temp} (TMPDIR, on the "
        "file system at "
    ), line


@pytest.mark.integration
def test_a_download_into_a_full_temp_folder_says_so_not_that_the_model_is_missing(
    smoke_run: dict, temp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's download hides the OS error (it says "please ensure that the path is
    correct"), so the full file system is read from the folder written to."""
    store = TrackingStore(typed_config(smoke_run["cfg"]).tracking)
    run_id = smoke_run["summary"].run_id
    whole = download_run_model(store, run_id, tmp_path / "whole")  # where its files go
    with pytest.raises(TrackingError, match="has no artifact 'nothing/here'"):
        download_artifacts(store, run_id, "nothing/here", temp / "ssgan-x")  # room: missing

    # Every write into the temp folder fails for want of space, and it has none left.
    scratch = temp / "ssgan-promote-1"
    for file in (p for p in whole.rglob("*") if p.is_file()):
        _full(scratch / file.relative_to(tmp_path / "whole"))
    config = temp / "ssgan-export-1"
    _full(config / "config.yaml")  # a file artifact lands in the folder itself
    usage = shutil.disk_usage(temp)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=0))
    with pytest.raises(DiskFullError) as caught:
        download_run_model(store, run_id, scratch)
    assert str(caught.value) == (
        f"model runs:/{run_id}/model could not be downloaded into {scratch}: No space left on "
        f"device in the temp folder {temp} (TMPDIR, on the file system at "
        f"{_mount_point(temp)}; 0 B free now)"
    )
    with pytest.raises(DiskFullError, match=f"could not be downloaded into {config}: No space"):
        download_artifacts(store, run_id, "config/config.yaml", config)


def _mount_point(folder: Path) -> Path:
    while not folder.is_mount():
        folder = folder.parent
    return folder
