"""One trial of a search: a training run composed from the plan and the trial's values,
reporting each epoch's validation accuracy to the pruner, told to the study at its end.

A trial that retries one whose worker died continues that trial's MLflow run from its
last checkpoint (or records how the run ended, if it ended before the study heard).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from ssgan.cli import compose_config
from ssgan.runtime import start_tensorflow
from ssgan.sweeps import space as space_lib
from ssgan.sweeps.plan import Plan
from ssgan.sweeps.trial_lease import release, retried_numbers, trial_lease
from ssgan.tracking.lease import live_owner
from ssgan.tracking.runs import Run, child_runs, get_run, set_run_tags
from ssgan.tracking.tags import (
    OPTUNA_STUDY_TAG,
    OVERRIDES_TAG,
    PRUNED_AT_EPOCH_TAG,
    PRUNED_TAG,
    TRIAL_ROLE_TAG,
    TRIAL_TAG,
)
from ssgan.training.interface import NonFiniteLossError, StopTraining

OBJECTIVE = "val/accuracy"  # reported per epoch; the trial's value is its best epoch's
ROLE_ATTR = "ssgan.role"  # baseline | enqueued | sampled
ERROR_ATTR = "ssgan.error"  # a trial whose training diverged: failed, and counted


class EpochReporter:
    """The training loop's epoch-end hook: report validation accuracy, maybe prune."""

    def __init__(self, trial: optuna.Trial, reported: set[int]) -> None:
        self.trial = trial
        self.reported = reported  # epochs a resumed trial reported before the kill

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch in self.reported:
            return
        self.trial.report(float(metrics[OBJECTIVE]), epoch)
        if self.trial.should_prune():
            raise StopTraining(
                f"pruned by the {self.trial.study.pruner.__class__.__name__} at epoch {epoch}",
                tags={PRUNED_TAG: "true", PRUNED_AT_EPOCH_TAG: str(epoch)},
            )


def trial_values(plan: Plan, study: optuna.Study, trial: optuna.Trial) -> dict[str, Any]:
    """The trial's values: enqueued or retried ones as they are, others drawn from the
    sampler's stream for this trial number (the same draws whichever worker runs it)."""
    study.sampler = space_lib.make_sampler(plan.search, offset=trial.number)
    return {p.key: space_lib.suggest(trial, p) for p in plan.params}


def _earlier_run(plan: Plan, parent_id: str, numbers: list[int]) -> Run | None:
    """The MLflow run a dead predecessor of this trial started, if any."""
    if not numbers:
        return None
    wanted = {str(n) for n in numbers}
    runs = [r for r in child_runs(plan.store, parent_id) if r.data.tags.get(TRIAL_TAG) in wanted]
    return runs[-1] if runs else None


def _wait_while_owned(plan: Plan, run: Run) -> Run:
    """A predecessor's run that a live job still trains (its trial's lease lapsed while
    its run's did not, e.g. the study's storage was unreachable): wait for it to end."""
    while owner := live_owner(run):
        print(f"run {run.info.run_id} is still trained by {owner}: waiting for it to end")
        time.sleep(plan.lease_s / 3)
        run = get_run(plan.store, run.info.run_id)
    return run


def _record_ended(study: optuna.Study, trial: optuna.Trial, run: Run) -> None:
    """Tell the study how a predecessor's run ended (its worker died before telling)."""
    trial.set_user_attr("mlflow_run_id", run.info.run_id)
    if run.info.status == "FAILED":
        trial.set_user_attr(ERROR_ATTR, f"its run {run.info.run_id} ended FAILED")
        study.tell(trial, state=TrialState.FAIL)
    elif run.data.tags.get(PRUNED_TAG) == "true":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, run.data.metrics["best/val_accuracy"])
    print(f"trial {trial.number}: its run {run.info.run_id} had ended {run.info.status}")


def run_trial(plan: Plan, study: optuna.Study, trial: optuna.Trial, parent_id: str) -> None:
    """Train one trial (or continue its dead predecessor's run) and tell the study how it
    ended. A stop or an error releases the trial, so the next worker continues it."""
    frozen = study.get_trials(deepcopy=False)[trial.number]
    values = trial_values(plan, study, trial)
    overrides = [f"{key}={space_lib.format_value(v)}" for key, v in values.items()]
    earlier = _earlier_run(plan, parent_id, retried_numbers(frozen))
    if earlier is not None:
        earlier = _wait_while_owned(plan, earlier)
        if earlier.info.status in ("FINISHED", "FAILED"):
            _record_ended(study, trial, earlier)
            return
        set_run_tags(plan.store, earlier.info.run_id, {TRIAL_TAG: str(trial.number)})
    cfg = compose_config(
        "config",
        plan.base_overrides
        + overrides
        + [f"tracking.run_name={plan.search.name}-trial-{trial.number}"],
        plan.config_path,
    )
    cfg.resume = earlier.info.run_id if earlier is not None else None
    tags = {
        "mlflow.parentRunId": parent_id,
        TRIAL_TAG: str(trial.number),
        OPTUNA_STUDY_TAG: plan.study_name,
        OVERRIDES_TAG: " ".join(plan.base_overrides + overrides),
        TRIAL_ROLE_TAG: str(frozen.user_attrs.get(ROLE_ATTR, "sampled")),
    }
    print(f"trial {trial.number}: {' '.join(overrides)}" + (" (resumed)" if cfg.resume else ""))
    reporter = EpochReporter(trial, set(frozen.intermediate_values))
    # TensorFlow starts with the first trial a process trains: a search's flags, its
    # checks and a launcher's parent process answer without paying for its import.
    start_tensorflow()
    from ssgan.training.run import train

    try:
        with trial_lease(trial, plan.lease_s):
            summary = train(cfg, on_epoch_end=reporter, tags=tags, job=plan.job)
    except NonFiniteLossError as err:
        # Divergence is an outcome of these settings, not a broken search: it uses budget.
        trial.set_user_attr(ERROR_ATTR, str(err))
        study.tell(trial, state=TrialState.FAIL)
        print(f"trial {trial.number}: failed ({err})")
        return
    except BaseException:
        # Given back at once; should that fail too, its lapsed lease gives it back later.
        with contextlib.suppress(Exception):
            release(study, study.get_trials(deepcopy=False)[trial.number])
        raise
    if summary.stopped_early:
        _tell(study, trial, summary.run_id, state=TrialState.PRUNED)
        print(f"trial {trial.number}: {summary.stopped_early}")
    else:
        _tell(study, trial, summary.run_id, summary.best_val_accuracy)
        print(f"trial {trial.number}: best val accuracy {summary.best_val_accuracy:.4f}")


def _tell(
    study: optuna.Study, trial: optuna.Trial, run_id: str, value: float | None = None, **kw: Any
) -> None:
    try:
        trial.set_user_attr("mlflow_run_id", run_id)
        study.tell(trial, value, **kw)
    except UpdateFinishedTrialError:
        # Another worker judged this trial dead (its lease was not renewed for a whole
        # period) and queued it again; that worker records this run's outcome.
        print(f"trial {trial.number}: taken over by another worker, which records its run")
