"""Resume policy: which unfinished run a job continues (``resume=auto``), and what a
resumed run may change (``resume=<run_id>``)."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ssgan.config import MOVED_TO_METHOD, REMOVED_KEYS, flatten
from ssgan.config_checks import validate_train_config
from ssgan.errors import UserError
from ssgan.job_context import NO_JOB, JobContext
from ssgan.tracking.lease import live_owner, refuse_if_owned
from ssgan.tracking.mlflow_model import run_model_uri
from ssgan.tracking.runs import (
    CONFIG_ARTIFACT,
    Run,
    get_run,
    has_artifact,
    load_run_config,
    mark_failed,
    metric_history,
    search_runs,
    set_run_tags,
)
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tags import CHECKPOINT_STEP_TAG, JOB_KEY_TAG, RESTARTED_TAG
from ssgan.training.job import job_key
from ssgan.training.summary import RunSummary

log = logging.getLogger("ssgan.train")

# Why a run without a config is ended: nothing can resume it, and it never trained.
NO_CONFIG = "its job ended before recording the run's config (the run never trained)"

# What may differ on resume: where the store and the data files are, not what is trained.
RESUME_MAY_CHANGE = ("tracking.", "data.root", "data.download", "data.verify", "data.num_workers")


def resumed_config(
    cfg: DictConfig, store: TrackingStore, job: JobContext = NO_JOB
) -> tuple[DictConfig, str]:
    """The config and run id that ``resume=<run_id>`` continues with: the run's own config
    (only :data:`RESUME_MAY_CHANGE` taken from ``cfg``), once the run is known to be
    unfinished, free of a live job, asked for nothing ``job``'s command line would have
    it ignore, and resumable."""
    run = get_run(store, cfg.resume)
    if run.info.status == "FINISHED":
        raise UserError(f"resume={cfg.resume}: that run already FINISHED; nothing to resume")
    if run.info.lifecycle_stage == "deleted":
        raise UserError(
            f"resume={cfg.resume}: the run is deleted in the tracking store; restore it "
            f"(mlflow runs restore --run-id {cfg.resume}), then resume it"
        )
    refuse_if_owned(store.settings.lease_s, run)  # a live job's run has no checkpoint yet, maybe
    if not has_artifact(store, run.info.run_id, CONFIG_ARTIFACT):
        mark_failed(store, run.info.run_id, NO_CONFIG)
        raise UserError(
            f"resume={cfg.resume}: the run never recorded its config (its job ended while "
            "starting it, before any training): it is now marked FAILED; start a new run"
        )
    stored = load_run_config(store, cfg.resume)
    _refuse_ignored_overrides(cfg, stored, job)
    _check_checkpoints(cfg, store, run)
    for key in RESUME_MAY_CHANGE:
        OmegaConf.update(stored, key.rstrip("."), OmegaConf.select(cfg, key.rstrip(".")))
    stored.resume = None
    validate_train_config(stored)
    return stored, run.info.run_id


def environment_run(
    cfg: DictConfig, store: TrackingStore, run_id: str
) -> tuple[DictConfig, str | None]:
    """What ``MLFLOW_RUN_ID=<run_id>`` asks of this job, as for MLflow's own ``start_run``:
    to record into that run. A run this project started (it has a job key or a config)
    is continued as ``resume=<run_id>`` would (also under ``resume=auto``: the variable
    names the run); a run made elsewhere that never trained (``mlflow run`` makes one and
    sets the variable) records this training. Returns the config to train and the run to
    record a new training into (None: resume, or a new run); ``resume=`` another run is
    refused in one line."""
    name = f"MLFLOW_RUN_ID={run_id}"
    if cfg.resume not in (None, "", "auto", run_id):
        raise UserError(
            f"{name} and resume={cfg.resume} name different runs: unset MLFLOW_RUN_ID or "
            "drop resume="
        )
    try:
        run = get_run(store, run_id)
    except UserError as err:
        raise UserError(f"{name}: {err}") from err
    if run.info.status == "FINISHED" or run.info.lifecycle_stage == "deleted":
        state = "deleted" if run.info.lifecycle_stage == "deleted" else "FINISHED"
        raise UserError(f"{name} names a run that is {state}: unset MLFLOW_RUN_ID or name another")
    cfg = cfg.copy()
    if JOB_KEY_TAG in run.data.tags or has_artifact(store, run_id, CONFIG_ARTIFACT):
        cfg.resume = run_id
        return cfg, None
    cfg.resume = None
    return cfg, run_id


def unfinished_run_of_this_job(
    cfg: DictConfig, store: TrackingStore, job: JobContext = NO_JOB
) -> str | None:
    """The newest unfinished run this job started (what ``resume=auto`` continues)."""
    key = this_job_key(cfg, job)
    runs = search_runs(store, f"tags.`{JOB_KEY_TAG}` = '{key}' and attributes.status != 'FINISHED'")
    for run in sorted(runs, key=lambda r: r.info.start_time, reverse=True):
        run_id = run.info.run_id
        if live_owner(run) is not None or has_artifact(store, run_id, CONFIG_ARTIFACT):
            return run_id  # (a live job's run is refused by name when it is resumed)
        # Its job died between creating it and recording its config: it never trained.
        mark_failed(store, run_id, NO_CONFIG)
        log.warning(f"run {run_id} of this job never recorded its config: marked FAILED")
    return None


def finished_run_of_this_sweep_job(
    cfg: DictConfig, store: TrackingStore, job: JobContext = NO_JOB
) -> RunSummary | None:
    """The summary of the newest FINISHED run of this job when it is a sweep's job (its
    folder and number are in its key): the sweep's command run again with ``resume=auto``
    reports that run instead of training the job again. Outside a sweep, ``resume=auto``
    after a finished run starts a new one (the same line is a new run)."""
    if not job.multirun:
        return None
    key = this_job_key(cfg, job)
    runs = search_runs(store, f"tags.`{JOB_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'")
    run = max(runs, key=lambda r: r.info.start_time, default=None)
    if run is None:
        return None
    run_id, metrics = run.info.run_id, run.data.metrics
    log.info(f"run_id: {run_id} (finished in an earlier attempt of this sweep: not trained again)")
    steps = [m.step for m in metric_history(store, run_id, "best/val_accuracy")]
    return RunSummary(
        run_id=run_id,
        steps=max(steps, default=0),
        best_val_accuracy=metrics.get("best/val_accuracy", float("nan")),
        best_test_accuracy=metrics.get("best/test_accuracy", float("nan")),
        best_epoch=int(metrics.get("best/epoch", 0)),
        model_uri=run_model_uri(store, run_id),
        export_test_accuracy=metrics.get("export/test_accuracy"),
    )


def this_job_key(cfg: DictConfig, job: JobContext = NO_JOB) -> str:
    """This job's key: its overrides, what they composed (``cfg`` without what a resume
    may change) and, in a Hydra multirun, its sweep folder and job."""
    hydra_job = {}
    if job.multirun:
        hydra_job = {"sweep": str(job.sweep_dir), "job": str(job.job_num)}
    return job_key(list(job.overrides), hydra_job, config_fingerprint(cfg))


def config_fingerprint(cfg: DictConfig) -> str:
    """A hash of what ``cfg`` trains: every key but :data:`RESUME_MAY_CHANGE` and ``resume``."""
    trained = {
        key: str(value)
        for key, value in _in_earlier_layout(flatten(cfg)).items()
        if not key.startswith(RESUME_MAY_CHANGE) and key != "resume"
    }
    # Runs started before a key was removed hashed it too: their jobs keep their keys.
    for key, removed in REMOVED_KEYS.items():
        trained.setdefault(key, str(removed.value))
    return hashlib.sha256(json.dumps(trained, sort_keys=True).encode()).hexdigest()[:16]


def _in_earlier_layout(flat: dict[str, Any]) -> dict[str, Any]:
    """The two methods that existed before the ``method`` group as those runs hashed
    them (``train.mode``, ``train.feature_matching``, ``train.unsupervised_weight``), so
    a job started before keeps its key; other methods as they are."""
    name = flat.get("method.name")
    if name not in ("ssgan", "supervised"):
        return flat
    earlier = {key: value for key, value in flat.items() if not key.startswith("method.")}
    earlier["train.mode"] = name
    for key in MOVED_TO_METHOD:
        earlier[f"train.{key}"] = flat.get(f"method.{key}", REMOVED_KEYS[f"train.{key}"].value)
    return earlier


def _refuse_ignored_overrides(cfg: DictConfig, stored: DictConfig, job: JobContext) -> None:
    """A resumed run keeps the config it was started with (its params): an override that
    asks for something else would be silently ignored, so it is refused by name."""
    touched = _overridden_keys(job)
    given, recorded = flatten(cfg), flatten(stored)
    ignored = [
        f"{key}={given[key]} (the run has {recorded[key]})"
        for key in given
        if key in recorded
        and given[key] != recorded[key]
        and not key.startswith(RESUME_MAY_CHANGE)
        and key != "resume"
        and (touched is None or key in touched)
    ]
    if ignored:
        raise UserError(
            f"resume={cfg.resume} keeps the config the run was started with, so it would "
            f"ignore {', '.join(ignored)}; on resume only tracking.*, data.root, "
            "data.download, data.verify and data.num_workers may change (start a new run "
            "for other settings)"
        )


def _overridden_keys(job: JobContext) -> list[str] | None:
    """Config keys the command line set (None when not under Hydra: compare every key).

    A group choice counts by its ``name`` (``model=improved_gan`` asks for
    ``model.name``); a preset (``experiment=…``) is not an explicit ask for each of its
    keys, so repeating the run's own command line with ``resume=`` still works.
    """
    if not job.in_hydra_job:
        return None
    keys = []
    for override in job.overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ("resume", "experiment") or key.startswith("hydra"):
            continue
        keys.append(key if "." in key else f"{key}.name")
    return keys


def _check_checkpoints(cfg: DictConfig, store: TrackingStore, run: Run) -> None:
    """A run that trained (it logged training metrics) but has no checkpoint any more
    cannot continue where it stopped: refused. One that never completed a checkpoint
    (it died before its first, :data:`CHECKPOINT_STEP_TAG` unset) starts again from step
    0 in the same run: the steps its first attempt logged keep those metrics (the tracker
    logs no step twice) and :data:`RESTARTED_TAG` says up to which step that is."""
    trained = [key for key in run.data.metrics if key.startswith("train/")]
    run_id = run.info.run_id
    if not trained or has_artifact(store, run_id, "checkpoints/last/checkpoint"):
        return
    last = max(int(m.step) for m in metric_history(store, run_id, trained[0]))
    if CHECKPOINT_STEP_TAG in run.data.tags:
        raise UserError(
            f"resume={cfg.resume}: the run logged training up to step {last} but its "
            "checkpoints/ artifact is gone, so it cannot continue from where it stopped; "
            "start a new run"
        )
    log.warning(
        f"run {run_id} ended before its first complete checkpoint: it starts again from "
        f"step 0 in the same run (its metrics up to step {last} stay those of its first "
        "attempt)"
    )
    set_run_tags(store, run_id, {RESTARTED_TAG: str(last)})
