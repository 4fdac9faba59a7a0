"""End-to-end training: a smoke run's MLflow record, failure states, resume, sweeps."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from ssgan import host
from ssgan.cli import compose_config
from ssgan.errors import UserError
from ssgan.tracking.mlflow_model import download_run_model, saved_model_in
from ssgan.tracking.store import TrackingStore
from ssgan.training.run import train
from ssgan.training.summary import RunSummary, TrainingState
from tests.helpers.configs import tiny_overrides, typed_config
from tests.helpers.mlflow_runs import logged_model_files
from tests.helpers.processes import mlflow_server, run_cli
from tests.helpers.repo import REPO_ROOT

SUMMARY = RunSummary(run_id="abc", steps=60, best_val_accuracy=0.115, best_test_accuracy=0.14,
                     best_epoch=1, images_per_sec=900.0)  # fmt: skip


@pytest.mark.unit
def test_a_run_summary_prints_as_train_printed_it_and_gives_its_final_metrics() -> None:
    exported = dataclasses.replace(SUMMARY, model_uri="models:/m-1", export_test_accuracy=0.16)
    assert exported.text() == (
        "run_id: abc\nmodel: models:/m-1\n"
        "best val accuracy 0.1150 (epoch 1), exported model test accuracy 0.1600"
    )
    assert exported.to_metrics() == {"best/val_accuracy": 0.115, "best/test_accuracy": 0.14,
                                     "best/epoch": 1, "export/test_accuracy": 0.16}  # fmt: skip
    worker = dataclasses.replace(SUMMARY, chief=False)
    assert worker.text() == "run_id: abc (trained as a worker; the chief exported the model)"
    pruned = dataclasses.replace(SUMMARY, stopped_early="pruned at epoch 1")
    assert pruned.to_metrics() == {"best/val_accuracy": 0.115, "best/test_accuracy": 0.14,
                                   "best/epoch": 1}  # fmt: skip


@pytest.mark.unit
def test_the_training_state_reads_as_a_summary() -> None:
    state = TrainingState()
    state.step.assign(60)
    state.best_val_accuracy.assign(0.5)
    state.best_epoch.assign(2)
    summary = state.summary("abc", images_per_sec=12.5)
    assert (summary.run_id, summary.steps, summary.best_epoch) == ("abc", 60, 2)
    assert summary.best_val_accuracy == 0.5 and summary.best_test_accuracy == -1.0
    assert summary.model_uri is None and summary.export_test_accuracy is None and summary.chief


def _client(cfg) -> MlflowClient:
    return MlflowClient(tracking_uri=str(cfg.tracking.uri))


@pytest.mark.integration
def test_smoke_run_records_params_tags_metrics_artifacts(smoke_run: dict) -> None:
    cfg, summary = smoke_run["cfg"], smoke_run["summary"]
    run = _client(cfg).get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.z_size"] == "16"
    assert params["method.name"] == "ssgan"
    assert params["data.num_labeled"] == "100"
    tags = run.data.tags
    for key in ("ssgan.data_fingerprint", "ssgan.tensorflow_version", "ssgan.mlflow_version"):
        assert tags[key]
    assert tags["ssgan.method"] == "ssgan"
    assert float(tags["ssgan.step_flops"]) > 0
    assert tags["ssgan.host_cpus"] == str(os.cpu_count())
    assert tags["ssgan.host_cpu"] == host.cpu().describe()  # the machine its wall-clock is from
    metrics = run.data.metrics
    for key in (
        "train/d_loss",
        "train/g_loss",
        "train/d_supervised_loss",
        "train/d_unsupervised_loss",
        "train/images_per_sec",
        "val/accuracy",
        "test/accuracy",
        "best/val_accuracy",
        "best/test_accuracy",
        "export/test_accuracy",
    ):
        assert key in metrics, key
    # The exported weights are the best epoch's: serving them reproduces its test accuracy.
    assert metrics["export/test_accuracy"] == pytest.approx(metrics["best/test_accuracy"], abs=1e-6)
    history = _client(cfg).get_metric_history(run.info.run_id, "val/accuracy")
    assert [m.step for m in history] == [8, 16]  # once per epoch
    artifacts = mlflow.artifacts.list_artifacts(
        run_id=run.info.run_id, tracking_uri=cfg.tracking.uri
    )
    names = {a.path for a in artifacts}
    assert {"config", "data", "checkpoints", "samples", "plots", "verification"} <= names
    local = Path(run.info.artifact_uri.removeprefix("file://"))
    # The model is the run's MLflow Model (its LoggedModel), listed under runs:/<id>/model.
    assert summary.model_uri.startswith("models:/m-")
    model_files = set(logged_model_files(_client(cfg), run.info.run_id))
    assert {"MLmodel", "artifacts"} <= model_files
    assert sorted(p.name for p in (local / "samples").iterdir()) == [
        "epoch_001.png",
        "epoch_002.png",
    ]
    assert (local / "plots" / "confusion_matrix.png").is_file()
    indices = np.load(local / "data" / "labelled_indices.npy")
    assert len(indices) == 100
    with tempfile.TemporaryDirectory() as scratch:
        model = download_run_model(TrackingStore(cfg.tracking), run.info.run_id, Path(scratch))
        loaded = tf.saved_model.load(str(saved_model_in(model)))
        assert "serving_default" in loaded.signatures


@pytest.mark.integration
def test_runs_filter_by_param(smoke_run: dict) -> None:
    cfg = smoke_run["cfg"]
    mlflow.set_tracking_uri(cfg.tracking.uri)
    found = mlflow.search_runs(
        experiment_names=[cfg.tracking.experiment], filter_string="params.`model.z_size` = '16'"
    )
    assert smoke_run["summary"].run_id in set(found["run_id"])
    none = mlflow.search_runs(
        experiment_names=[cfg.tracking.experiment], filter_string="params.`model.z_size` = '99'"
    )
    assert len(none) == 0


@pytest.mark.integration
def test_supervised_method_trains_the_same_discriminator(tmp_path: Path) -> None:
    cfg = compose_config("config", [*tiny_overrides(tmp_path), "method=supervised"])
    summary = train(cfg)
    run = _client(cfg).get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["method.name"] == "supervised"
    assert "train/g_loss" not in run.data.metrics and "train/d_supervised_loss" in run.data.metrics
    assert 0.0 <= run.data.metrics["test/balanced_accuracy"] <= 1.0
    assert not [a for a in _client(cfg).list_artifacts(run.info.run_id) if a.path == "samples"]
    assert 0.0 <= summary.export_test_accuracy <= 1.0


@pytest.mark.integration
@pytest.mark.parametrize("steps_per_loop", [1, 4])
def test_divergence_marks_run_failed_with_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps_per_loop: int
) -> None:
    """A NaN loss stops the run at once with a clear error naming its step, also when the
    step is inside a multi-step call; the run is FAILED, with its Hydra job's log and
    .hydra/ files attached all the same."""
    from ssgan.job_context import JobContext
    from ssgan.methods import base as gan_module

    real_step = gan_module.ClassifierMethod._replica_step

    def diverging_step(self, batch):
        losses = dict(real_step(self, batch))
        # In the graph: the third update of D (step 3) reports a NaN loss.
        diverged = self.d_optimizer.iterations >= 3
        losses["d_loss"] = tf.where(diverged, float("nan"), losses["d_loss"])
        return losses

    monkeypatch.setattr(gan_module.ClassifierMethod, "_replica_step", diverging_step)
    cfg = compose_config(
        "config", [*tiny_overrides(tmp_path), f"train.steps_per_loop={steps_per_loop}"]
    )
    monkeypatch.chdir(tmp_path)
    job = JobContext(output_dir=tmp_path / "outputs" / "job", launch_dir=tmp_path)
    (tmp_path / "outputs" / "job" / ".hydra").mkdir(parents=True)
    (tmp_path / "outputs" / "job" / ".hydra" / "overrides.yaml").write_text("- a=1\n")
    (tmp_path / "outputs" / "job" / "train.log").write_text("run_id: …\n")
    with pytest.raises(UserError, match="train/d_loss became nan at step 3:"):
        train(cfg, job=job)
    runs = _client(cfg).search_runs(
        [_client(cfg).get_experiment_by_name(cfg.tracking.experiment).experiment_id]
    )
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "NonFiniteLossError" in runs[0].data.tags["ssgan.error"]
    assert "train/d_loss" not in runs[0].data.metrics  # nothing logged past the failure
    attached = _client(cfg).list_artifacts(runs[0].info.run_id, "hydra/outputs/job")
    assert sorted(a.path for a in attached) == [
        "hydra/outputs/job/.hydra",
        "hydra/outputs/job/train.log",
    ]


class _RecordingTracker:
    """Keeps what the loop logs, in memory."""

    run_id = "recording"

    def __init__(self) -> None:
        self.metrics: dict[str, list[int]] = {}
        self.checkpoints: list[int] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key in metrics:
            self.metrics.setdefault(key, []).append(step)

    def log_image(self, image, artifact_file: str) -> None:
        del image, artifact_file

    def flush(self) -> None:
        pass

    def log_checkpoint(self, step: int) -> None:
        self.checkpoints.append(step)


@pytest.mark.integration
def test_steps_per_loop_keeps_log_checkpoint_and_epoch_steps_exact(tmp_path: Path) -> None:
    """With 3 steps per call, dividing none of the intervals, every log step,
    checkpoint and epoch end still lands on its exact step, and one trace serves all
    call lengths."""
    from ssgan.data import load_data
    from ssgan.training.distribute import make_strategy
    from ssgan.training.loop_options import LoopOptions
    from ssgan.training.trainer import Trainer
    from tests.helpers.networks import build

    cfg = compose_config(
        "config",
        [*tiny_overrides(tmp_path), "train.steps_per_loop=3", "train.checkpoint_every=5",
         "train.log_every=4", "train.steps_per_epoch=7", "train.sample_grid=false"],
    )  # fmt: skip
    settings = typed_config(cfg)
    data = load_data(settings.data, settings.model.num_classes)
    strategy = make_strategy(settings.train)
    gan = build(settings.model, settings.train, "ssgan", strategy)
    calls: list[int] = []
    real_train_steps = gan.train_steps
    gan.train_steps = lambda b, count, step: calls.append(count) or real_train_steps(b, count, step)
    tracker, saved = _RecordingTracker(), []
    options = LoopOptions.from_config(settings.train, settings.data, settings.method)
    trainer = Trainer(options, data, gan, tracker, tmp_path / "ckpt", strategy,
                      after_save=lambda: saved.append(int(trainer.state.step.numpy())))  # fmt: skip
    summary = trainer.fit()
    assert summary.steps == 14 and sum(calls) == 14 and max(calls) == 3
    assert calls == [3, 1, 1, 2, 1, 2, 2, 2]  # cut at 3|4|5|7 and 8|10|12|14
    assert tracker.metrics["train/d_loss"] == [4, 7, 8, 12, 14]  # log steps and epoch ends
    assert tracker.metrics["val/accuracy"] == [7, 14]
    assert saved == [5, 7, 10, 14] and tracker.checkpoints == saved
    assert gan._loop.experimental_get_tracing_count() == 1

    # By time as well (train.checkpoint_every_s): once due, at the end of the next call.
    timed = replace(options, checkpoint_every=1000, checkpoint_every_s=1e-9, epochs=1)
    tracker = _RecordingTracker()
    Trainer(timed, data, gan, tracker, tmp_path / "timed", strategy).fit()
    assert tracker.checkpoints == [3, 4, 7]  # calls end at 3 and 4 (a log step) and 7


@pytest.mark.e2e
def test_missing_data_stops_before_any_run(tmp_path: Path) -> None:
    result = run_cli(
        "ssgan.train",
        *tiny_overrides(tmp_path, seeded=False),
        "data=svhn",
        "data.download=false",
        "data.num_labeled=100",
        "data.val_size=100",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "data=synthetic" in result.stderr
    assert not (tmp_path / "mlruns").exists()
    (log,) = (tmp_path / "outputs").glob("*/*/train.log")  # the error line is logged too
    assert log.read_text().strip().endswith(result.stderr.strip())


def _latest_step(checkpoint_dir: Path) -> int:
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _variables(checkpoint_dir: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(checkpoint_dir)))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if "OBJECT_GRAPH" not in name and "save_counter" not in name
    }


@pytest.mark.e2e
@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """SIGKILL mid-run, resume=<id>: same final weights and test accuracy as no kill."""
    overrides = [
        *tiny_overrides(tmp_path),
        "train.deterministic=true",
        "train.epochs=2",
        "train.steps_per_epoch=50",  # long enough to catch it mid-run
        "train.checkpoint_every=5",
        "train.log_every=3",
        "train.steps_per_loop=4",  # a kill lands inside a multi-step call
    ]
    whole = run_cli("ssgan.train", *overrides, cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    whole_id = whole.stdout.split("run_id: ")[1].split()[0]

    victim = subprocess.Popen(
        [sys.executable, "-m", "ssgan.train", *overrides],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ssgan")
    deadline = time.time() + 240
    victim_id, ckpt_dir = None, None
    while time.time() < deadline and victim.poll() is None:
        running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
        if running:
            victim_id = running[0].info.run_id
            ckpt_dir = Path(running[0].info.artifact_uri.removeprefix("file://")) / "checkpoints"
            if _latest_step(ckpt_dir / "last") >= 10:
                break
        time.sleep(0.05)
    assert victim.poll() is None, "the run ended before it could be killed mid-run"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim_id is not None and 10 <= _latest_step(ckpt_dir / "last") < 100

    resumed = run_cli("ssgan.train", *tiny_overrides(tmp_path), f"resume={victim_id}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    runs = {r: client.get_run(r) for r in (whole_id, victim_id)}
    assert runs[victim_id].info.status == "FINISHED"
    assert (
        runs[victim_id].data.metrics["export/test_accuracy"]
        == runs[whole_id].data.metrics["export/test_accuracy"]
    )
    # No step logged twice for any metric.
    for key in runs[victim_id].data.metrics:
        steps = [m.step for m in client.get_metric_history(victim_id, key)]
        assert len(steps) == len(set(steps)), key
    whole_dir = Path(runs[whole_id].info.artifact_uri.removeprefix("file://")) / "checkpoints"
    expected, actual = _variables(whole_dir / "last"), _variables(ckpt_dir / "last")
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


@pytest.mark.e2e
@pytest.mark.slow
def test_multirun_sweep_gives_one_tagged_run_per_job(tmp_path: Path) -> None:
    """One parent run, a child per job, the best and a report; the same command again
    in its folder with resume=auto trains nothing: its jobs report their finished runs
    under the same parent."""
    sweep = [
        "ssgan.train", "-m", *tiny_overrides(tmp_path), "model.z_size=8,16",
        "train.epochs=1", "resume=auto", f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]  # fmt: skip
    result = run_cli(*sweep, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ssgan")
    everything = client.search_runs([experiment.experiment_id])
    # The sweep is one parent run; its jobs are its children.
    (parent,) = [r for r in everything if "ssgan.sweep_kind" in r.data.tags]
    runs = [r for r in everything if r is not parent]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in runs)
    assert sorted(r.data.params["model.z_size"] for r in runs) == ["16", "8"]
    sweep_ids = {r.data.tags["ssgan.sweep_id"] for r in runs}
    assert len(sweep_ids) == 1 and all(r.info.status == "FINISHED" for r in runs)
    assert all("z_size=" in r.info.run_name for r in runs)
    assert parent.info.status == "FINISHED" and parent.data.tags["ssgan.sweep_kind"] == "grid"
    assert parent.data.tags["ssgan.command"].startswith("python -m ssgan.train -m ")
    assert parent.data.params["sweep.model.z_size"] == "8,16"
    best = max(runs, key=lambda r: r.data.metrics["best/val_accuracy"])
    assert parent.data.tags["ssgan.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best/val_accuracy"] == best.data.metrics["best/val_accuracy"]
    # Its report: written by the sweep on the parent run, and again by the report command.
    assert "report/report.md" in [
        a.path for a in client.list_artifacts(parent.info.run_id, "report")
    ]
    report = run_cli("ssgan.report", f"parent_run_id={parent.info.run_id}",
                     f"tracking.uri=sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                     cwd=tmp_path)  # fmt: skip
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "reports" / parent.info.run_id / "report.md").read_text()
    assert "| model.z_size | best/val_accuracy | best/test_accuracy | runs |" in text
    assert (tmp_path / "reports" / parent.info.run_id / "plots").is_dir()

    again = run_cli(*sweep, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"sweep parent run: {parent.info.run_id} (continued" in again.stdout
    assert again.stdout.count("(finished in an earlier attempt of this sweep") == 2, again.stdout
    rerun = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_id for r in rerun) == sorted(r.info.run_id for r in everything)
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["ssgan.runs"] == "2"
    assert parent.data.tags["ssgan.best_run_id"] == best.info.run_id


@pytest.mark.e2e
@pytest.mark.slow
def test_a_sweep_defined_in_a_preset_names_its_parent_run(tmp_path: Path) -> None:
    """Issue 33 item 4: a sweep set in a config file (``hydra.sweeper.params`` in an
    experiment preset, Hydra's documented way) ran its jobs under a parent run named
    ``sweep-`` with no swept keys, no ``sweep.*`` params and no best values."""
    presets = tmp_path / "conf" / "experiment"
    presets.mkdir(parents=True)
    smoke = (REPO_ROOT / "conf" / "experiment" / "smoke.yaml").read_text()
    sweep = "hydra:\n  sweeper:\n    params:\n      model.z_size: 8,16\n"
    (presets / "swept.yaml").write_text(smoke + sweep)
    store = [o for o in tiny_overrides(tmp_path) if o != "experiment=smoke"]
    result = run_cli(
        "ssgan.train", "-m", "--config-dir", str(tmp_path / "conf"), "experiment=swept",
        *store, "train.epochs=1", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    everything = client.search_runs([client.get_experiment_by_name("ssgan").experiment_id])
    (parent,) = [r for r in everything if "ssgan.sweep_kind" in r.data.tags]
    runs = [r for r in everything if r is not parent]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in runs)
    assert sorted(r.data.params["model.z_size"] for r in runs) == ["16", "8"]
    assert parent.info.run_name == "sweep-z_size"
    assert parent.data.tags["ssgan.swept_params"] == "model.z_size"
    assert parent.data.params["sweep.model.z_size"] == "8,16"
    best = max(runs, key=lambda r: r.data.metrics["best/val_accuracy"])
    assert parent.data.tags["ssgan.best_run_id"] == best.info.run_id
    assert parent.data.tags["ssgan.best.model.z_size"] == best.data.params["model.z_size"]


@pytest.mark.integration
def test_resume_of_unknown_or_finished_run_is_refused(smoke_run: dict, tmp_path: Path) -> None:
    cfg = smoke_run["cfg"].copy()
    cfg.resume = "f" * 32
    with pytest.raises(UserError, match="was not found"):
        train(cfg)
    cfg.resume = smoke_run["summary"].run_id
    with pytest.raises(UserError, match="already FINISHED"):
        train(cfg)
    assert REPO_ROOT.is_dir()


@pytest.mark.e2e
def test_export_cli_from_a_runs_best_and_last_checkpoint(smoke_run: dict, tmp_path: Path) -> None:
    cfg, run_id = smoke_run["cfg"], smoke_run["summary"].run_id
    for which in ("best", "last"):
        out = tmp_path / which
        result = run_cli(
            "ssgan.export", f"run_id={run_id}", f"checkpoint={which}", f"output={out}",
            f"tracking.uri={cfg.tracking.uri}", cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        loaded = tf.saved_model.load(str(out))
        assert {"serving_default", "predict_images", "classify"} <= set(loaded.signatures)
    again = run_cli("ssgan.export", f"run_id={run_id}", f"output={tmp_path / 'best'}",
                    f"tracking.uri={cfg.tracking.uri}", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 2 and "already exists" in again.stderr
    assert {p.name for p in tmp_path.iterdir()} == {"best", "last"}  # Hydra wrote nothing


@pytest.mark.e2e
@pytest.mark.slow
def test_ctrl_c_marks_the_run_killed_and_it_can_resume(tmp_path: Path) -> None:
    # The signal, not the GAN: the classifier alone, a step a third of the GAN's, so as many
    # more steps keep it training until the signal (which stops it: they cost nothing).
    overrides = [*tiny_overrides(tmp_path), "method=supervised", "train.steps_per_epoch=1400",
                 "train.checkpoint_every=5"]  # fmt: skip
    victim = subprocess.Popen(
        [sys.executable, "-m", "ssgan.train", *overrides],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    deadline, run = time.time() + 240, None
    while time.time() < deadline and run is None:
        experiment = (
            client.get_experiment_by_name("ssgan") if (tmp_path / "mlruns").exists() else None
        )
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if runs and "train/d_loss" in client.get_run(runs[0].info.run_id).data.metrics:
            run = runs[0]
        time.sleep(0.2)
    victim.send_signal(signal.SIGINT)
    _, stderr = victim.communicate(timeout=120)
    assert victim.returncode == 130
    assert "marked KILLED" in stderr and "Traceback" not in stderr
    assert client.get_run(run.info.run_id).info.status == "KILLED"


@pytest.mark.e2e
@pytest.mark.slow
def test_remote_tracking_server_gets_checkpoints_and_model(tmp_path: Path, capsys) -> None:
    """With an MLflow tracking server, checkpoints are uploaded and the model logged; the
    run's link (MLflow prints it when a run ends) is printed once."""
    with mlflow_server(tmp_path) as uri:
        overrides = [
            *tiny_overrides(tmp_path, seeded=False),
            f"tracking.uri={uri}",
            "method=supervised",
        ]
        cfg = compose_config("config", overrides)
        summary = train(cfg)
        assert summary.model_uri.startswith("models:/m-")
        listed = {a.path for a in MlflowClient(uri).list_artifacts(summary.run_id, "checkpoints")}
        assert {"checkpoints/last", "checkpoints/best"} <= listed
        assert not (tmp_path / "mlruns").exists()  # nothing went to the local default store
        assert capsys.readouterr().out.count("View run ") == 1


@pytest.mark.integration
@pytest.mark.parametrize("method", ["mean_teacher", "fixmatch"])
def test_a_method_without_a_generator_trains_exports_and_promotes(
    tmp_path: Path, method: str
) -> None:
    """Every method exports the same SavedModel contract and is promoted the same way;
    Mean Teacher's exported classifier is its teacher, also from ``checkpoints/last``."""
    from ssgan.serving.promotion import promote, promote_settings
    from ssgan.serving.saved_model import export_from_checkpoint

    overrides = [*tiny_overrides(tmp_path), f"method={method}", "method.unlabelled_ratio=2"
                 if method == "fixmatch" else "method.rampup=0.5"]  # fmt: skip
    cfg = compose_config("config", overrides)
    summary = train(cfg)
    client = _client(cfg)
    run = client.get_run(summary.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ssgan.method"] == method
    assert not [a for a in client.list_artifacts(summary.run_id) if a.path == "samples"]
    own = "train/pseudo_label_share" if method == "fixmatch" else "train/consistency_loss"
    assert own in run.data.metrics and "train/g_loss" not in run.data.metrics
    settings = typed_config(cfg)
    if method == "mean_teacher":
        last = tmp_path / "exported_last"
        (tmp_path / "dl").mkdir()
        local = client.download_artifacts(summary.run_id, "checkpoints/last", str(tmp_path / "dl"))
        crops = np.zeros((2, 32, 32, 3), np.uint8)
        export_from_checkpoint(settings.model, Path(local), last, warmup_images=crops, use_ema=True)
        assert (last / "saved_model.pb").exists()
    promoted = promote(promote_settings(compose_config("promote", [
        f"run_id={summary.run_id}", f"serving_dir={tmp_path / 'serving'}",
        f"tracking.uri={settings.tracking.uri}",
        f"tracking.artifact_root={settings.tracking.artifact_root}",
    ])))  # fmt: skip
    assert Path(promoted.path, "saved_model.pb").exists()
