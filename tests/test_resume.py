"""Resume from damaged or missing state: fall back, refuse, or say what was ignored."""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ssgan.cli import compose_config
from ssgan.data import load_data
from ssgan.tracking.mlflow_model import download_run_model, saved_model_in
from ssgan.tracking.store import TrackingStore
from ssgan.training.run import train
from tests.helpers.configs import tiny_overrides, typed_config
from tests.helpers.processes import run_cli


def _history(client: MlflowClient, run_id: str) -> dict[str, list[int]]:
    return {
        key: [m.step for m in client.get_metric_history(run_id, key)]
        for key in client.get_run(run_id).data.metrics
    }


def _as_if_it_failed(client: MlflowClient, run_id: str) -> None:
    """The state an attempt that crashed leaves: FAILED, with its error as a tag."""
    client.set_tag(run_id, "ssgan.error", "OSError: an earlier attempt failed")
    client.set_terminated(run_id, status="FAILED")


@pytest.mark.e2e
@pytest.mark.slow
def test_resume_refuses_ignored_overrides_falls_back_and_refuses_lost_checkpoints(
    tmp_path: Path,
) -> None:
    overrides = [*tiny_overrides(tmp_path), "method=supervised"]  # resume's rules, not the GAN's
    summary = train(compose_config("config", overrides))
    run_id = summary.run_id
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    before = _history(client, run_id)
    _as_if_it_failed(client, run_id)
    checkpoints = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    checkpoints /= "checkpoints"

    # An override resume would ignore is refused by name; where-things-are keys are fine.
    refused = run_cli("ssgan.train", *overrides, f"resume={run_id}", "train.epochs=3",
                      "data.num_workers=1", cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert "would ignore train.epochs=3 (the run has 2)" in line
    assert "data.num_workers=1" not in line
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr

    # A truncated newest checkpoint: the one before it is used, and the run says so.
    (newest,) = sorted((checkpoints / "last").glob("ckpt-16.data-*"))
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    resumed = run_cli("ssgan.train", *overrides, f"resume={run_id}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "ckpt-16" in resumed.stderr and "resuming from ckpt-8 (step 8) instead" in resumed.stderr
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "ssgan.error" not in run.data.tags  # the failed attempt's error is cleared
    assert _history(client, run_id) == before  # nothing logged twice, nothing lost

    # checkpoints/ deleted: resume refuses rather than restart from step 0.
    _as_if_it_failed(client, run_id)
    shutil.rmtree(checkpoints)
    gone = run_cli("ssgan.train", *overrides, f"resume={run_id}", cwd=tmp_path)
    assert gone.returncode == 2, gone.stderr
    assert "checkpoints/ artifact is gone" in gone.stderr and "Traceback" not in gone.stderr
    assert gone.stderr.count("\n") == 1
    assert _history(client, run_id) == before
    assert client.get_run(run_id).info.status == "FAILED"


@pytest.mark.e2e
@pytest.mark.slow
def test_full_disk_fails_the_run_in_one_line_and_resume_completes_it(
    tmp_path: Path,
) -> None:
    """A file-size limit (ulimit -f) stands in for a full disk: the first checkpoint
    (about 3 MB with these widths) cannot be written, the store (about 1 MB) can."""
    overrides = [*tiny_overrides(tmp_path), "model.d_size_mult=32", "model.g_size_mult=16",
                 "train.epochs=1", "train.steps_per_epoch=4", "train.log_every=1",
                 "train.checkpoint_every=2"]  # fmt: skip
    load_data(typed_config(compose_config("config", overrides)).data)  # the cache, first
    limit = 2 * 1024 * 1024

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "ssgan.train", *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, preexec_fn=small_files,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: cannot write checkpoint ckpt-2") and "File too large" in line
    assert "Traceback" not in result.stderr
    run_id = result.stdout.split("run_id: ")[1].split()[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and "File too large" in run.data.tags["ssgan.error"]
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert not [p for p in artifacts.rglob("*") if "_temp" in p.name]
    promote = run_cli("ssgan.promote", f"run_id={run_id}", *overrides[2:4], cwd=tmp_path)
    assert promote.returncode == 2 and f"run {run_id} is FAILED, not FINISHED" in promote.stderr

    # Space freed: resume=<run_id>, as the error line advises, completes the same run. It
    # logged steps 1 and 2 but never completed a checkpoint: it starts again from step 0.
    resumed = run_cli("ssgan.train", *overrides, f"resume={run_id}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "ended before its first complete checkpoint: it starts again from step 0" in (
        resumed.stderr
    )
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and "ssgan.error" not in run.data.tags
    assert run.data.tags["ssgan.restarted_after_step"] == "2"
    assert run.data.tags["ssgan.checkpoint_step"] == "4"
    # The model is an MLflow Model now: its SavedModel is inside it, not in the run's model/.
    tracking = compose_config("config", overrides).tracking
    local = download_run_model(TrackingStore(tracking), run_id, tmp_path / "downloaded")
    assert (saved_model_in(local) / "saved_model.pb").is_file()
    assert (artifacts / "checkpoints" / "last" / "checkpoint").is_file()
    for key in run.data.metrics:  # nothing logged twice across the two attempts
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert len(steps) == len(set(steps)), key


@pytest.mark.integration
def test_resume_auto_tells_apart_commands_whose_overrides_match(tmp_path: Path) -> None:
    """``--config-dir A experiment=mine resume=auto`` and the same line with ``--config-dir
    B`` (another mine.yaml) had one job key: B continued A's KILLED run, with A's config.
    The key now includes what the config trains (not where the store or data are)."""
    from ssgan.cli import SearchPath
    from ssgan.tracking.tags import JOB_KEY_TAG
    from ssgan.tracking.tracker import create_run
    from ssgan.training.resume import this_job_key, unfinished_run_of_this_job

    folders = {}
    for name, z_size in (("a", 16), ("b", 32)):
        (tmp_path / name / "experiment").mkdir(parents=True)
        text = f"# @package _global_\ndefaults:\n  - smoke\nmodel:\n  z_size: {z_size}\n"
        (tmp_path / name / "experiment" / "mine.yaml").write_text(text)
        folders[name] = SearchPath(extra=(str(tmp_path / name),))
    line = ["experiment=mine", "resume=auto", *tiny_overrides(tmp_path)[1:]]
    cfg_a, cfg_b = (compose_config("config", line, folders[n]) for n in ("a", "b"))
    assert (cfg_a.model.z_size, cfg_b.model.z_size) == (16, 32)
    killed = create_run(TrackingStore(cfg_a.tracking), "a", {JOB_KEY_TAG: this_job_key(cfg_a)}, {})
    killed.log_text("model: {}\n", "config/config.yaml")  # it got as far as recording it
    killed.finish("KILLED")
    assert unfinished_run_of_this_job(cfg_b, TrackingStore(cfg_b.tracking)) is None
    assert unfinished_run_of_this_job(cfg_a, TrackingStore(cfg_a.tracking)) == killed.run_id
    # A rerun elsewhere (another data cache, run name) is still the same job.
    moved = cfg_a.copy()
    moved.data.root, moved.tracking.run_name = str(tmp_path / "elsewhere"), "renamed"
    assert unfinished_run_of_this_job(moved, TrackingStore(moved.tracking)) == killed.run_id


@pytest.mark.integration
def test_a_run_that_never_recorded_its_config_is_ended_not_resumed_forever(
    tmp_path: Path,
) -> None:
    """A job killed between creating its run and recording the run's config left it
    RUNNING without one: resume=auto failed on it forever. Now resume=auto ends it FAILED
    and continues the job's previous unfinished run (or starts a new one); resume=<id>
    ends it and says so in one line."""
    from ssgan.errors import UserError
    from ssgan.tracking.tags import ERROR_TAG, JOB_KEY_TAG
    from ssgan.tracking.tracker import create_run
    from ssgan.training.resume import resumed_config, this_job_key, unfinished_run_of_this_job

    cfg = compose_config("config", [*tiny_overrides(tmp_path), "resume=auto"])
    store = TrackingStore(cfg.tracking)
    key = {JOB_KEY_TAG: this_job_key(cfg)}
    older = create_run(store, "older", key, {})
    older.log_text("model: {}\n", "config/config.yaml")
    older.finish("KILLED")
    assert unfinished_run_of_this_job(cfg, store) == older.run_id
    bare = create_run(store, "bare", key, {})  # RUNNING, no config, no live owner
    assert unfinished_run_of_this_job(cfg, store) == older.run_id
    client = store.client
    ended = client.get_run(bare.run_id)
    assert ended.info.status == "FAILED" and "never trained" in ended.data.tags[ERROR_TAG]

    other = create_run(store, "other", key, {})
    cfg.resume = other.run_id
    with pytest.raises(UserError, match="never recorded its config .* marked FAILED") as err:
        resumed_config(cfg, store)
    assert "\n" not in str(err.value)
    assert client.get_run(other.run_id).info.status == "FAILED"


@pytest.mark.integration
def test_a_run_that_cannot_record_its_config_is_marked_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config write refused (a read-only artifact folder, an unencodable path): the
    run used to stay RUNNING without a config; now it is FAILED and the line says why."""
    from ssgan.errors import UserError
    from ssgan.tracking.tracker import RunTracker

    def refused(self: RunTracker, text: str, artifact_file: str) -> None:
        raise PermissionError(13, "Permission denied", artifact_file)

    monkeypatch.setattr(RunTracker, "log_text", refused)
    cfg = compose_config("config", tiny_overrides(tmp_path))
    with pytest.raises(UserError, match="could not record its config") as err:
        train(cfg)
    assert "Permission denied" in str(err.value) and "\n" not in str(err.value)
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
    assert run.info.status == "FAILED" and "Permission denied" in run.data.tags["ssgan.error"]


@pytest.mark.integration
def test_a_sweep_job_whose_run_finished_reports_it_with_resume_auto(tmp_path: Path) -> None:
    """The sweep's command run again in its folder with resume=auto: a job whose run
    FINISHED in the earlier attempt returns that run's summary and trains nothing; a job
    of no sweep would start a new run (the same line is a new run)."""
    from ssgan.job_context import NO_JOB, JobContext
    from ssgan.tracking.tags import JOB_KEY_TAG
    from ssgan.tracking.tracker import create_run
    from ssgan.training.resume import finished_run_of_this_sweep_job, this_job_key

    cfg = compose_config("config", [*tiny_overrides(tmp_path), "resume=auto"])
    store = TrackingStore(cfg.tracking)
    job = JobContext(overrides=("train.seed=1",), multirun=True, sweep_dir="multirun/x", job_num=1)
    done = create_run(store, "done", {JOB_KEY_TAG: this_job_key(cfg, job)}, {})
    metrics = {"best/val_accuracy": 0.5, "best/test_accuracy": 0.25, "best/epoch": 2.0}
    done.log_metrics({**metrics, "export/test_accuracy": 0.3}, 16)
    done.finish("FINISHED")
    other_job = JobContext(overrides=("train.seed=1",), multirun=True, sweep_dir="multirun/x",
                           job_num=2)  # fmt: skip
    assert finished_run_of_this_sweep_job(cfg, store, other_job) is None
    assert finished_run_of_this_sweep_job(cfg, store, NO_JOB) is None

    summary = train(cfg, job=job)
    assert (summary.run_id, summary.steps, summary.best_epoch) == (done.run_id, 16, 2)
    assert (summary.best_val_accuracy, summary.export_test_accuracy) == (0.5, 0.3)
    client = MlflowClient(cfg.tracking.uri)
    (only,) = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
    assert only.info.run_id == done.run_id and only.info.status == "FINISHED"
