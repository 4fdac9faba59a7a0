"""RunTracker on MLflow's own mechanisms: its run context around a training run
(``mlflow.active_run()``, the fluent API in a callback, nested runs, ``MLFLOW_RUN_ID``;
the status stays the tracker's), log_batch's own splitting, its system-metrics monitor."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from ssgan.cli import compose_config
from ssgan.config import TrackingConfig, typed
from ssgan.errors import UserError
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tracker import RunTracker
from ssgan.training.resume import environment_run
from ssgan.training.run import train
from tests.helpers.configs import tiny_overrides


def _settings(tmp_path: Path, **given: bool) -> TrackingConfig:
    """A private store and artifact folder under ``tmp_path``."""
    uri, artifacts = f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts")
    return TrackingConfig(uri=uri, artifact_root=artifacts, retry_s=2.0, **given)


def _store(tmp_path: Path) -> TrackingStore:
    return TrackingStore(_settings(tmp_path))


@pytest.mark.integration
def test_a_training_run_is_mlflows_active_run_and_mlflow_run_id_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run made elsewhere and named by MLFLOW_RUN_ID (as ``mlflow run`` does) records
    the training; while it trains it is MLflow's active run, so a callback's
    ``mlflow.log_metric`` lands in it; afterwards no run is active and the status is
    the tracker's (FINISHED: every point recorded)."""
    cfg = compose_config("config", [*tiny_overrides(tmp_path), "method=supervised"])
    store = TrackingStore(typed(cfg.tracking, TrackingConfig))
    client = MlflowClient(cfg.tracking.uri)
    made = client.create_run(store.experiment_id(), tags={"mlflow.source.type": "PROJECT"})
    run_id = made.info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    seen: list[str | None] = []

    def callback(epoch: int, metrics: dict[str, float]) -> None:
        active = mlflow.active_run()
        seen.append(active.info.run_id if active else None)
        mlflow.log_metric("user/epoch", epoch, step=epoch)

    summary = train(cfg, on_epoch_end=callback)
    assert summary.run_id == run_id and seen == [run_id, run_id]
    assert mlflow.active_run() is None
    assert "MLFLOW_RUN_ID" not in os.environ  # used up, as mlflow.start_run does
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run_id, "user/epoch")) == [1, 2]
    assert run.data.tags["mlflow.source.type"] == "PROJECT"  # its maker's tags stay
    assert "ssgan.job_key" in run.data.tags and "model.z_size" in run.data.params


@pytest.mark.integration
def test_the_fluent_run_ends_with_the_trackers_status_nested_in_the_callers(
    tmp_path: Path,
) -> None:
    """Inside a caller's own active run a new run is its child; leaving the context ends
    the fluent run without MLflow's default FINISHED: a FAILED run stays FAILED, and a
    run whose status was never written stays RUNNING."""
    store = _store(tmp_path)
    store.use_in_fluent_api()
    outer = mlflow.start_run(experiment_id=store.experiment_id())
    try:
        failed = RunTracker.start(store, {"a": 1}, {}, "failed")
        tags = store.client.get_run(failed.run_id).data.tags
        assert tags["mlflow.parentRunId"] == outer.info.run_id
        with failed.active():
            assert mlflow.active_run().info.run_id == failed.run_id
            failed.finish("FAILED", error="it broke")
        assert mlflow.active_run().info.run_id == outer.info.run_id
        assert store.client.get_run(failed.run_id).info.status == "FAILED"

        unwritten = RunTracker.start(store, {}, {}, "unwritten")
        with pytest.raises(RuntimeError), unwritten.active():
            raise RuntimeError("before any status")
        assert mlflow.active_run().info.run_id == outer.info.run_id
        assert store.client.get_run(unwritten.run_id).info.status == "RUNNING"
    finally:
        mlflow.end_run()


@pytest.mark.integration
def test_mlflow_run_id_resumes_this_projects_runs_and_refuses_a_conflict(
    tmp_path: Path,
) -> None:
    cfg = compose_config("config", tiny_overrides(tmp_path))
    store = TrackingStore(typed(cfg.tracking, TrackingConfig))
    ours = store.client.create_run(store.experiment_id(), tags={"ssgan.job_key": "k"})
    theirs = store.client.create_run(store.experiment_id())
    ours_id, theirs_id = ours.info.run_id, theirs.info.run_id
    resumed, into = environment_run(cfg, store, ours_id)
    assert (resumed.resume, into) == (ours_id, None)  # as resume=<id>
    cfg.resume = "auto"
    resumed, into = environment_run(cfg, store, ours_id)
    assert resumed.resume == ours_id  # the variable names the run
    fresh, into = environment_run(cfg, store, theirs_id)
    assert (fresh.resume, into) == (None, theirs_id)  # made elsewhere: records into it
    cfg.resume = ours_id
    with pytest.raises(UserError, match=f"MLFLOW_RUN_ID={theirs_id} and resume={ours_id}"):
        environment_run(cfg, store, theirs_id)
    cfg.resume = None
    store.client.set_terminated(theirs_id)
    store.client.set_terminated(ours_id)  # a FINISHED run of ours, named the same way
    for finished in (theirs_id, ours_id):
        with pytest.raises(
            UserError, match=f"MLFLOW_RUN_ID={finished} names a run that is FINISHED"
        ):
            environment_run(cfg, store, finished)
    with pytest.raises(UserError, match="MLFLOW_RUN_ID=0{32}: run_id=0{32} was not found"):
        environment_run(cfg, store, "0" * 32)


@pytest.mark.integration
def test_params_past_mlflows_batch_limit_go_in_one_call_that_mlflow_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracker no longer splits params itself: MlflowClient.log_batch does, at
    MLflow's per-request limit, and all of them are recorded."""
    from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

    store = _store(tmp_path)
    calls: list[int] = []
    real = store.client.log_batch

    def counted(run_id: str, metrics=(), params=(), tags=(), **kwargs):
        if params:
            calls.append(len(params))
        return real(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(store.client, "log_batch", counted)
    count = 2 * MAX_PARAMS_TAGS_PER_BATCH + 50
    params = {f"p.{i:03d}": i for i in range(count)}
    tracker = RunTracker.start(store, params, {}, "many-params")
    tracker.finish("FINISHED")
    assert calls == [count]
    assert store.client.get_run(tracker.run_id).data.params == {
        k: str(v) for k, v in params.items()
    }


@pytest.mark.integration
def test_system_metrics_come_from_mlflows_monitor_and_continue_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mlflow.start_run(log_system_metrics=True)`` samples while the run is active; a
    resumed run's points continue its steps instead of writing step 0 again."""
    import time
    from dataclasses import replace

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    settings = _settings(tmp_path, system_metrics=True)
    store = TrackingStore(settings)
    key = "system/cpu_utilization_percentage"
    first = RunTracker.start(store, {}, {}, "sampled")
    with first.active():
        time.sleep(1.0)
        first.finish("KILLED", error="stopped")
    steps = [m.step for m in store.client.get_metric_history(first.run_id, key)]
    assert steps and steps == list(range(len(steps)))
    again = RunTracker.resume(TrackingStore(replace(settings)), first.run_id)
    with again.active():
        time.sleep(1.0)
        again.finish("FINISHED")
    resumed = [m.step for m in store.client.get_metric_history(first.run_id, key)]
    assert len(resumed) > len(steps) and resumed == list(range(len(resumed)))
