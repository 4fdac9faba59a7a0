"""One training run, end to end: resume or create the MLflow run, train, export the best
checkpoint, record the outcome. The Hydra entry point is :mod:`ssgan.train`.

``train(cfg)`` wires data, model, tracking, the training loop and export together and
returns the run's summary; tests call it directly.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from ssgan import plots
from ssgan.config import ModelConfig, TrackingConfig, TrainAppConfig, flatten, typed
from ssgan.config_checks import validate_train_config
from ssgan.data import SemiSupervisedData, load_data
from ssgan.errors import DiskFullError, UserError, disk_full_reason, first_line, tf_reason
from ssgan.job_context import NO_JOB, JobContext
from ssgan.job_paths import as_written
from ssgan.methods import build_method
from ssgan.methods.base import ClassifierMethod
from ssgan.serving.images import encode_png
from ssgan.serving.saved_model import export_from_checkpoint, score_saved_model
from ssgan.serving.verification import VERIFICATION_ARTIFACT, save_verification_set
from ssgan.stopping import JobStopped, check_stop
from ssgan.tracking import tags as tag_names
from ssgan.tracking.datasets import Split
from ssgan.tracking.mlflow_model import SAVED_MODEL_KEY
from ssgan.tracking.provenance import environment_tags
from ssgan.tracking.run_context import run_id_from_environment
from ssgan.tracking.runs import CONFIG_ARTIFACT, download_artifacts, get_run
from ssgan.tracking.store import RunDeletedError, TrackingStore, TrackingWriteError
from ssgan.tracking.tracker import FollowerTracker, RunTracker
from ssgan.training.distribute import (
    WorkerRole,
    enable_determinism,
    make_strategy,
    share_run_id,
    worker_role,
)
from ssgan.training.hydra_job import attach_job_files, link_run, log, run_name, sweep_tags
from ssgan.training.interface import EpochHook, StopTraining
from ssgan.training.job import checkpoints_on_stop, install_handlers, stop_signals
from ssgan.training.loop_options import LoopOptions
from ssgan.training.peers import wait_for_workers
from ssgan.training.resume import (
    environment_run,
    finished_run_of_this_sweep_job,
    resumed_config,
    this_job_key,
    unfinished_run_of_this_job,
)
from ssgan.training.summary import RunSummary
from ssgan.training.trainer import Trainer, steps_per_epoch

WARMUP_IMAGES = 32
INPUT_EXAMPLE_IMAGES = 2  # test images saved with the MLflow Model as its input example
JobTracker = RunTracker | FollowerTracker  # the chief records the run, the others follow


class StoppedRun(KeyboardInterrupt):
    """The job was stopped (Ctrl-C, SIGTERM, SIGUSR2) and its run marked KILLED."""

    def __init__(self, why: str, run_id: str, cause: KeyboardInterrupt) -> None:
        super().__init__(why)
        self.run_id = run_id
        self.signal = cause if isinstance(cause, JobStopped) else None
        self.exit_status = self.signal.exit_status if self.signal else 130


def train(
    cfg: DictConfig,
    on_epoch_end: EpochHook | None = None,
    tags: dict[str, str] | None = None,
    job: JobContext = NO_JOB,
) -> RunSummary:
    """Run one training job described by ``cfg``; return run id, metrics and model location.

    With ``resume=<run_id>`` the run continues from its last checkpoint, with the config
    it was started with. With ``resume=auto`` the job continues its own unfinished run
    (the newest run of the same job key, see :func:`ssgan.training.job.job_key`) if it has one,
    and starts a new run otherwise: a rerun or requeue of the same command carries on (a
    sweep's job whose run finished returns that run's summary, untrained).
    ``on_epoch_end(epoch, metrics)`` is called after every epoch's
    evaluation; raising :class:`~ssgan.training.interface.StopTraining` there ends the run early
    (FINISHED, its metrics so far, no exported model; the summary says ``stopped_early``).
    ``tags`` are added to a new run's tags (a sweep's parent, a trial number). ``job`` is
    the Hydra job this run is part of (its entry point builds it; none by default).
    ``MLFLOW_RUN_ID`` names the run to record into (:func:`environment_run`). While it
    trains, the run is MLflow's active run in this process (nested in the caller's).
    """
    validate_train_config(cfg)
    # One that cannot work stops before any work (the run's own config may differ: resume).
    store = TrackingStore.open(typed(cfg.tracking, TrackingConfig))
    given = _Inputs(on_epoch_end, tags or {}, job)
    with stop_signals():
        named = run_id_from_environment()  # MLFLOW_RUN_ID, as for mlflow.start_run
        if named:
            cfg, given.into_run = environment_run(cfg, store, named)
        if cfg.resume == "auto":
            unfinished = unfinished_run_of_this_job(cfg, store, job)
            if unfinished is None:  # a sweep's job that finished before is not trained again
                earlier = finished_run_of_this_sweep_job(cfg, store, job)
                return earlier or _run(cfg, store, run_id=None, given=given)
            cfg = cfg.copy()
            cfg.resume = unfinished
        if cfg.resume:
            stored, run_id = resumed_config(cfg, store, job)
            return _run(stored, store, run_id=run_id, given=given)
        return _run(cfg, store, run_id=None, given=given)


@dataclass
class _Inputs:
    """What the caller gave besides the config."""

    on_epoch_end: EpochHook | None
    tags: dict[str, str]
    job: JobContext
    into_run: str | None = None  # an existing run, never trained, to record into


def _run(cfg: DictConfig, store: TrackingStore, run_id: str | None, given: _Inputs) -> RunSummary:
    """Train the run ``cfg`` describes (the composed config, or a resumed run's own): it
    is written out as the run's record; below here its typed values travel."""
    settings = typed(cfg, TrainAppConfig)
    keras.utils.set_random_seed(settings.train.seed)
    enable_determinism(settings.train)
    # Data first: a missing file or bad label budget must stop before a run is created.
    data = load_data(settings.data, settings.model.num_classes)
    check_stop()  # a stop asked for while the data loaded ends here, before a run exists
    role = worker_role(settings.train)
    wait_for_workers(role, settings.train.worker_wait_s)
    strategy = make_strategy(settings.train)
    install_handlers()  # TensorFlow's multi-worker runtime replaces the SIGTERM handler
    options = LoopOptions.from_config(settings.train, settings.data, settings.method)
    total_steps = steps_per_epoch(options, data) * options.epochs
    gan = build_method(settings.model, settings.train, settings.method, total_steps, strategy)
    compute = {tag_names.STEP_FLOPS_TAG: f"{gan.step_flops(settings.data.batch_size):.6g}"}
    tracker = _open_run(store, cfg, settings, data, run_id, role, strategy, given, compute)
    with tracker.active():  # MLflow's active run while it trains: the chief's process
        _announce(tracker, role, resumed=run_id is not None, job=given.job)
        try:
            summary = _fit_and_export(settings, options, data, gan, tracker, strategy, role, given)
            attach_job_files(tracker, given.job, summary.text())  # the log, the summary in it
            tracker.finish("FINISHED")
        except KeyboardInterrupt as err:
            stopped = str(err) or "interrupted (Ctrl-C)"
            _finish_after_error(tracker, "KILLED", stopped)
            attach_job_files(tracker, given.job)  # after its status: that matters first
            raise StoppedRun(stopped, tracker.run_id, err) from err
        except BaseException as err:
            shown = _as_user_error(err, tracker.run_id)
            if role.count > 1 and isinstance(err, tf.errors.OpError) and shown is err:
                reason = tf_reason(str(err)) or first_line(err)
                shown = UserError(
                    f"a worker of this job was lost ({reason}): the other workers' output says "
                    f"why; then run the same command with resume={tracker.run_id} on every "
                    "worker to continue"
                )
            _finish_after_error(tracker, "FAILED", f"{type(shown).__name__}: {shown}", shown)
            attach_job_files(tracker, given.job)
            if shown is not err:
                raise shown from err
            raise
    return summary


def _as_user_error(err: BaseException, run_id: str) -> BaseException:
    """A full disk is the user's to fix: one line (not a traceback) wherever it struck."""
    reason = disk_full_reason(err)
    if reason is None or isinstance(err, UserError):
        return err
    return DiskFullError(
        f"out of disk space ({reason}): run {run_id} stops here, marked FAILED; free "
        f"space, then resume={run_id} continues from its last complete checkpoint"
    )


def _open_run(
    store: TrackingStore,
    cfg: DictConfig,
    settings: TrainAppConfig,
    data: SemiSupervisedData,
    run_id: str | None,
    role: WorkerRole,
    strategy: tf.distribute.Strategy,
    given: _Inputs,
    compute: dict[str, str],
) -> JobTracker:
    """The chief creates or resumes the run and tells the other workers its id; they
    follow it without writing to it. One job, one run."""
    if not role.chief:
        shared = share_run_id(strategy, role, None)
        if not shared:
            raise UserError("the chief worker could not open the run (its output says why)")
        return FollowerTracker(store, get_run(store, shared))
    try:
        if run_id is None:
            replicas = {tag_names.REPLICAS_TAG: str(strategy.num_replicas_in_sync)}
            tags = {**_run_tags(cfg, settings, data, given.job), **role.tags, **replicas, **compute}
            name = run_name(settings, given.job)
            params = flatten(as_written(cfg, given.job))  # the same with hydra.job.chdir
            tags = {**tags, **given.tags}
            tracker = RunTracker.start(store, params, tags, name, run_id=given.into_run)
            _record_inputs(tracker, cfg, data)
        else:
            tracker = RunTracker.resume(store, run_id)
    except BaseException:
        share_run_id(strategy, role, None)  # the other workers stop too instead of waiting
        raise
    share_run_id(strategy, role, tracker.run_id)
    return tracker


def _record_inputs(tracker: RunTracker, cfg: DictConfig, data: SemiSupervisedData) -> None:
    """What a new run is trained from: its config (what resume reads), its labelled
    subset and its datasets. A run that cannot record them is ended, not left RUNNING
    without a config that nothing could resume."""
    try:
        tracker.log_text(OmegaConf.to_yaml(cfg), CONFIG_ARTIFACT)
        tracker.log_array(data.labelled_indices, "data/labelled_indices.npy")
        tracker.log_datasets(data.fingerprint, _splits(data))
    except KeyboardInterrupt as err:
        _finish_after_error(tracker, "KILLED", str(err) or "interrupted (Ctrl-C)")
        raise
    except Exception as err:
        reason = disk_full_reason(err) or first_line(err)
        shown = UserError(
            f"run {tracker.run_id} could not record its config and data ({reason}): it is "
            "marked FAILED; once that is fixed the same command starts a new run"
        )
        _finish_after_error(tracker, "FAILED", f"{type(err).__name__}: {reason}", shown)
        raise shown from err


def _splits(data: SemiSupervisedData) -> dict[str, Split]:
    """The run's data as MLflow records it: the training pool (labelled images included),
    the validation split held out of it, the test set."""
    train, test = data.files.get("train", ""), data.files.get("test", "")
    return {
        "train": Split(train, data.unlabelled_x),
        "validation": Split(train, data.val_x, data.val_y),
        "test": Split(test, data.test_x, data.test_y),
    }


def _finish_after_error(
    tracker: JobTracker, status: str, error: str, cause: BaseException | None = None
) -> None:
    """Record the failure; when even that cannot be written, say so in the one line the
    user sees (the store still says RUNNING, not FINISHED)."""
    try:
        tracker.finish(status, error=error)
    except RunDeletedError as deleted:
        raise deleted from cause  # its status cannot be written: the line says what to do
    except TrackingWriteError as record_err:
        first = str(cause) if isinstance(cause, UserError) else error
        if not isinstance(cause, TrackingWriteError):
            first += f"; and {record_err}"
        raise TrackingWriteError(
            f"{first}; its status could not be recorded either, so the store still shows run "
            f"{tracker.run_id} as RUNNING (resume={tracker.run_id} continues it once the "
            "store is writable)"
        ) from cause


def _announce(tracker: JobTracker, role: WorkerRole, resumed: bool, job: JobContext) -> None:
    """Say which run this is before training starts: an interrupted job can be resumed
    by that id even if it never prints its summary."""
    how = "resumed" if resumed else "started"
    if not role.chief:
        how = f"worker {role.index} of {role.count}; the chief records the run"
    log.info(f"run_id: {tracker.run_id} ({how})")
    link_run(tracker, role.chief, job)


def _fit_and_export(
    settings: TrainAppConfig,
    options: LoopOptions,
    data: SemiSupervisedData,
    gan: ClassifierMethod,
    tracker: JobTracker,
    strategy: tf.distribute.Strategy,
    role: WorkerRole,
    given: _Inputs,
) -> RunSummary:
    with tempfile.TemporaryDirectory(prefix="ssgan-") as tmp:
        run_checkpoints, after_save = _run_checkpoints(tracker, Path(tmp))
        private = _private_dir(Path(tmp), role, given.job)
        checkpoint_dir = role.checkpoint_dir(run_checkpoints, private)
        if not role.chief:
            after_save = None
        trainer = Trainer(
            options, data, gan, tracker, checkpoint_dir, strategy, after_save, given.on_epoch_end
        )
        trainer.restore_latest()
        try:
            with checkpoints_on_stop(enabled=role.count == 1):
                summary = trainer.fit()
        except StopTraining as stop:
            return _stopped_early(trainer, tracker, stop)
        check_stop()  # asked to stop during the last evaluation: before export, not after
        if not role.chief:
            return replace(summary, chief=False)
        assert isinstance(tracker, RunTracker)  # the chief records the run
        # The folder's name is the SavedModel's name inside the MLflow Model.
        export_dir = Path(tmp) / SAVED_MODEL_KEY
        export_accuracy = _export_best(
            settings.model, data, checkpoint_dir / "best", export_dir, tracker
        )
        summary = replace(summary, export_test_accuracy=export_accuracy)
        tracker.log_metrics(summary.to_metrics(), summary.steps)
        examples = [encode_png(image) for image in data.test_x[:INPUT_EXAMPLE_IMAGES]]
        model_uri = tracker.log_model(export_dir, examples, summary.steps)
    return replace(summary, model_uri=model_uri)


def _stopped_early(trainer: Trainer, tracker: JobTracker, stop: StopTraining) -> RunSummary:
    """A run ended by its epoch hook: keep its metrics, record why, export nothing."""
    summary = replace(trainer.summary(), stopped_early=stop.reason)
    tracker.log_metrics(summary.to_metrics(), summary.steps)
    assert isinstance(tracker, RunTracker)  # only the chief can record why
    tracker.set_tags({tag_names.STOPPED_EARLY_TAG: stop.reason, **stop.tags})
    return summary


def _private_dir(scratch: Path, role: WorkerRole, job: JobContext) -> Path:
    """Where a non-chief worker saves: its Hydra output folder when there is one (kept,
    to compare workers), else scratch space."""
    return (job.output_dir or scratch) / f"worker-{role.index}-checkpoints"


def _run_checkpoints(tracker: JobTracker, scratch: Path) -> tuple[Path, Any]:
    """Checkpoints live in the run's own artifact folder when the store is local, so a
    resumed run finds them; with a remote store they are uploaded after every save."""
    local = tracker.local_artifact_dir("checkpoints")  # type: ignore[misc]  # Follower borrows it
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
        return local, None
    remote = scratch / "checkpoints"
    try:
        download_artifacts(tracker.store, tracker.run_id, "checkpoints", scratch)
    except UserError:
        remote.mkdir(parents=True, exist_ok=True)
    if not isinstance(tracker, RunTracker):  # a follower uploads nothing: the chief does
        return remote, None
    return remote, lambda: tracker.sync_artifacts(remote, "checkpoints")


def _export_best(
    model: ModelConfig,
    data: SemiSupervisedData,
    best_checkpoint: Path,
    export_dir: Path,
    tracker: RunTracker,
) -> float:
    """Export the best-validation weights; return their test accuracy through the
    exported serving signature (PNG bytes in, as a client would send). The run records a
    verification set with them, which promote checks the model against anywhere."""
    export_from_checkpoint(
        model, best_checkpoint, export_dir, warmup_images=data.test_x[:WARMUP_IMAGES]
    )
    scores = score_saved_model(export_dir, data.test_x)
    verification = export_dir.parent / Path(VERIFICATION_ARTIFACT).name
    save_verification_set(verification, data.test_x, data.test_y, scores)
    tracker.log_artifact(verification, str(Path(VERIFICATION_ARTIFACT).parent))
    predictions = np.argmax(scores, axis=-1)
    counts = plots.confusion_matrix(data.test_y, predictions, model.num_classes)
    for name, figure in (
        ("plots/confusion_matrix.png", plots.confusion_figure(counts)),
        ("plots/per_class_accuracy.png", plots.per_class_figure(plots.per_class_accuracy(counts))),
    ):
        tracker.log_figure(figure, name)
        plots.close(figure)
    return float(np.mean(predictions == data.test_y))


def _run_tags(
    cfg: DictConfig, settings: TrainAppConfig, data: SemiSupervisedData, job: JobContext
) -> dict[str, str]:
    """A new run's tags; its job key is a hash of the config it writes out (``cfg``)."""
    return {
        tag_names.METHOD_TAG: settings.method.name,
        tag_names.MODEL_TAG: settings.model.name,
        tag_names.DATA_TAG: settings.data.name,
        tag_names.DATA_FINGERPRINT_TAG: data.fingerprint,
        tag_names.OVERRIDES_TAG: " ".join(job.overrides),
        tag_names.JOB_KEY_TAG: this_job_key(cfg, job),
        **environment_tags(),
        **sweep_tags(job),
    }
