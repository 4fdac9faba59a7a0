"""A search's Optuna study shared by any number of worker processes: the study and its
parent run (created once), the budget of trials, the worker loop, and the outcome.

Every worker runs the same loop: requeue the trials of dead workers, take the next trial
(a queued one first, else a new draw), train it, tell the study, until the study holds
``search.n_trials`` finished trials. Trials are asynchronous: a worker takes the next
trial as soon as its own ends. When every trial is taken, a worker waits and takes over
any trial whose worker dies; the worker that tells the last trial ends the parent run.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, cast

import optuna
from omegaconf import OmegaConf
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import FrozenTrial, TrialState

from ssgan.config import flatten
from ssgan.errors import UserError
from ssgan.stopping import check_stop
from ssgan.sweeps import space as space_lib
from ssgan.sweeps.outcome import SearchOutcome
from ssgan.sweeps.plan import Plan
from ssgan.sweeps.storage import open_storage, shown_storage
from ssgan.sweeps.trial_lease import is_dead, requeue_dead_trials, retry_of
from ssgan.sweeps.trials import ERROR_ATTR, ROLE_ATTR, run_trial
from ssgan.tracking.runs import get_run
from ssgan.tracking.tags import (
    COMMAND_TAG,
    N_TRIALS_TAG,
    OPTUNA_STORAGE_TAG,
    OPTUNA_STUDY_TAG,
    OVERRIDES_TAG,
    SWEEP_KIND_TAG,
    SWEPT_PARAMS_TAG,
    TRIALS_FAILED_TAG,
)
from ssgan.tracking.tracker import RunTracker, create_run, reopen_run
from ssgan.training.job import stop_signals

OBJECTIVE_NAME = "val_accuracy"  # each trial's value: its run's best/val_accuracy
PARENT_ATTR = "ssgan.parent_run_id"
ENQUEUED_ATTR = "ssgan.enqueued"
EXCESS_ATTR = "ssgan.excess"  # a trial drawn after the budget was full (a race): not run
LEGACY_INTERRUPTED_ATTR = "ssgan.interrupted"  # killed before its run existed (old recovery)
_LOST_AFTER_S = 60.0  # an uncounted failure with no retry by then: its worker died releasing it
_POLL_S = 2.0  # how often a waiting worker looks at the study
_PARENT_WAIT_S = 120.0  # how long a worker waits for the study's creator to name the parent


@dataclass
class Budget:
    """How a study's trials use ``search.n_trials``. A trial that is not a retry takes a
    budget slot, in trial-number order, until ``n_trials`` are taken; later ones (drawn
    by workers racing for the last slot) are excess and not run. A retry continues its
    predecessor's slot. A slot counts when its trial completed, was pruned or diverged."""

    n_trials: int
    holders: list[int] = field(default_factory=list)  # trial numbers holding slots
    retries: set[int] = field(default_factory=set)  # trial numbers continuing a slot
    counted: list[FrozenTrial] = field(default_factory=list)
    waiting: int = 0
    running: list[FrozenTrial] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.counted) >= self.n_trials

    @property
    def can_take(self) -> bool:
        return self.waiting > 0 or len(self.holders) < self.n_trials

    def is_excess(self, number: int) -> bool:
        if number in self.retries:
            return False
        return sum(n < number for n in self.holders) >= self.n_trials


def counts(trial: FrozenTrial) -> bool:
    """Used up budget: completed, pruned, or failed while training (diverged)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs


def _is_lost(trial: FrozenTrial, retried: set[int]) -> bool:
    """An uncounted failure nobody continues (not even the old recovery)."""
    if trial.user_attrs.get(LEGACY_INTERRUPTED_ATTR):
        return True
    if trial.state != TrialState.FAIL or counts(trial) or trial.number in retried:
        return False
    ended = trial.datetime_complete
    return ended is None or (time.time() - ended.timestamp()) > _LOST_AFTER_S


def budget(study: optuna.Study, n_trials: int) -> Budget:
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    lost = {t.number for t in trials if _is_lost(t, retried)}
    result = Budget(n_trials)
    for trial in trials:
        if trial.user_attrs.get(EXCESS_ATTR):
            continue
        if retry_of(trial) is not None:
            result.retries.add(trial.number)
        elif trial.number not in lost:
            result.holders.append(trial.number)
        if counts(trial) and not result.is_excess(trial.number):
            result.counted.append(trial)
        result.waiting += trial.state == TrialState.WAITING
        if trial.state == TrialState.RUNNING:
            result.running.append(trial)
    result.counted = result.counted[:n_trials]
    return result


def open_study(plan: Plan) -> tuple[optuna.Study, bool]:
    """The plan's study and whether this worker created it. The creator queues the first
    trials (baseline, enqueued) once; the storage lets exactly one worker create it."""
    kwargs: dict[str, Any] = dict(
        study_name=plan.study_name,
        storage=open_storage(plan.storage),
        sampler=space_lib.make_sampler(plan.search),
        pruner=space_lib.make_pruner(plan.search.pruner),
    )
    try:
        study = optuna.create_study(direction="maximize", **kwargs)
    except DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        _name_objective(study)  # a study begun before it was named
        return study, False
    _name_objective(study)
    _enqueue_first_trials(plan, study)
    return study, True


def _name_objective(study: optuna.Study) -> None:
    """Name the objective (optuna-dashboard shows the name, not "Objective 0")."""
    if study.metric_names != [OBJECTIVE_NAME]:
        with warnings.catch_warnings():  # experimental in Optuna, stable for years
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_NAME])


def _enqueue_first_trials(plan: Plan, study: optuna.Study) -> None:
    for values, role in plan.first_trials:
        study.enqueue_trial(values, user_attrs={ROLE_ATTR: role})
    study.set_user_attr(ENQUEUED_ATTR, True)


def _create_parent(plan: Plan, study: optuna.Study) -> RunTracker:
    params = {f"search.{k}": v for k, v in flatten(plan.search).items()}
    for key in ("n_trials", "storage", "workers", "threads_per_worker"):
        params.pop(f"search.{key}")
    parent = create_run(
        plan.store,
        run_name=f"search-{plan.study_name}",
        tags={
            SWEEP_KIND_TAG: "search",
            COMMAND_TAG: plan.command,
            OVERRIDES_TAG: " ".join(plan.base_overrides),
            OPTUNA_STUDY_TAG: plan.study_name,
            OPTUNA_STORAGE_TAG: plan.storage,
            SWEPT_PARAMS_TAG: ",".join(p.key for p in plan.params),
        },
        params=params,
    )
    parent.log_text(OmegaConf.to_yaml(plan.search), "search/search.yaml")
    parent.log_text(OmegaConf.to_yaml(plan.base), "search/base_config.yaml")
    study.set_user_attr(PARENT_ATTR, parent.run_id)
    return parent


def parent_run(plan: Plan, study: optuna.Study, created: bool) -> RunTracker:
    """The search's one parent run: made by the study's creator; every other worker, and
    a search continued later, reopens it."""
    if created:
        parent = _create_parent(plan, study)
    else:
        deadline = time.monotonic() + _PARENT_WAIT_S
        while not study.user_attrs.get(PARENT_ATTR) and time.monotonic() < deadline:
            check_stop()
            time.sleep(0.5)  # the creator is queueing trials and making the parent run
        existing = study.user_attrs.get(PARENT_ATTR)
        if existing:
            parent = reopen_run(plan.store, existing)
        else:  # its creator died before making the parent: this worker does it
            if not study.user_attrs.get(ENQUEUED_ATTR):
                _enqueue_first_trials(plan, study)
            parent = _create_parent(plan, study)
    parent.set_tags({N_TRIALS_TAG: str(plan.search.n_trials)})
    return parent


def run_search(plan: Plan) -> SearchOutcome:
    """Work on the search until the study has its trials. A stop signal (Ctrl-C, SIGTERM)
    ends this worker (JobStopped, a KeyboardInterrupt); its trial is queued again and
    the same command continues it. The parent run is marked KILLED or FAILED only by the
    last worker standing."""
    with stop_signals():
        study, created = open_study(plan)
        parent = parent_run(plan, study, created)
        print(f"search {plan.study_name}: study storage {shown_storage(plan.storage)}")
        print(f"search {plan.study_name}: parent run {parent.run_id} (worker pid {os.getpid()})")
        try:
            finisher = _work(plan, study, parent)
        except KeyboardInterrupt as err:
            _end_if_last(plan, study, parent, "KILLED", str(err) or "interrupted (Ctrl-C)")
            raise
        except BaseException as err:
            _end_if_last(plan, study, parent, "FAILED", f"{type(err).__name__}: {err}")
            raise
        try:
            return finish(plan, study, parent) if finisher else outcome(plan, study, parent.run_id)
        except UserError as err:  # no trial completed: the search failed at its job
            if finisher:
                parent.finish("FAILED", error=str(err))
            raise


def _end_if_last(
    plan: Plan, study: optuna.Study, parent: RunTracker, status: str, why: str
) -> None:
    others = [
        t.number
        for t in budget(study, plan.search.n_trials).running
        if not is_dead(t, plan.lease_s)
    ]
    if others:
        print(f"search {plan.study_name}: other workers continue it (trials {others} run)")
    else:
        parent.finish(status, error=why)


def _ensure_running(plan: Plan, parent: RunTracker) -> None:
    """A parent marked KILLED by a stopped worker runs again when work goes on."""
    if get_run(plan.store, parent.run_id).info.status != "RUNNING":
        reopen_run(plan.store, parent.run_id)


def _work(plan: Plan, study: optuna.Study, parent: RunTracker) -> bool:
    """Take trials until the budget is spent; True when this worker should end the parent
    run (it told the last trial, or found the search done and nothing to wait for)."""
    n_trials = plan.search.n_trials
    last_told, waiting_said = False, False
    while True:
        check_stop()
        for number in requeue_dead_trials(study, plan.lease_s):
            print(f"trial {number}: its worker is gone; queued again, to continue its run")
        state = budget(study, n_trials)
        if state.done:
            return last_told or not waiting_said
        if not state.can_take:
            if not waiting_said:
                print(
                    f"search {plan.study_name}: every trial is taken (running: "
                    f"{[t.number for t in state.running]}); this worker waits and takes over "
                    "any trial whose worker dies"
                )
                waiting_said = True
            last_told = False
            time.sleep(_POLL_S)
            continue
        trial = study.ask()
        if budget(study, n_trials).is_excess(trial.number):
            trial.set_user_attr(EXCESS_ATTR, True)
            study.tell(trial, state=TrialState.FAIL)
            continue
        _ensure_running(plan, parent)
        run_trial(plan, study, trial, parent.run_id)
        last_told, waiting_said = True, False


def outcome(plan: Plan, study: optuna.Study, parent_id: str) -> SearchOutcome:
    """Counts and the best trial, as the study holds them; UserError when none completed."""
    trials = budget(study, plan.search.n_trials).counted
    states = [t.state for t in trials]
    counts = SearchOutcome(
        parent_run_id=parent_id,
        study=plan.study_name,
        complete=states.count(TrialState.COMPLETE),
        pruned=states.count(TrialState.PRUNED),
        failed=states.count(TrialState.FAIL),
        n_counted=len(trials),
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise UserError(no_trial_completed(plan, counts, trials))
    best = max(complete, key=lambda t: cast(float, t.value))  # COMPLETE: it has one
    baseline = [t for t in complete if t.user_attrs.get(ROLE_ATTR) == "baseline"]
    return replace(
        counts,
        best_trial=best.number,
        best_value=best.value,
        best_params=best.params,
        best_run_id=best.user_attrs.get("mlflow_run_id", ""),
        baseline_value=baseline[0].value if baseline else None,
    )


def finish(plan: Plan, study: optuna.Study, parent: RunTracker) -> SearchOutcome:
    """Record the outcome on the parent run (best trial, counts, report) and end it."""
    from ssgan.sweeps.report import write_report  # plots and tables only when a search ends

    try:
        result = outcome(plan, study, parent.run_id)
    except UserError:
        failed = budget(study, plan.search.n_trials).counted
        parent.set_tags({TRIALS_FAILED_TAG: str(sum(t.state == TrialState.FAIL for t in failed))})
        with contextlib.suppress(Exception):  # e.g. no run logged its metrics: optional
            write_report(plan.store, parent.run_id, out_dir=None, ending="FAILED")
        raise
    parent.set_tags(result.parent_tags())
    parent.log_metrics(result.to_metrics(), result.n_counted)
    report = write_report(plan.store, parent.run_id, out_dir=None, ending="FINISHED")
    parent.finish("FINISHED")
    return replace(result, report=str(report))


def no_trial_completed(plan: Plan, counts: SearchOutcome, trials: list[FrozenTrial]) -> str:
    """The one line for a search whose trials all failed or were pruned."""
    errors = [t.user_attrs[ERROR_ATTR] for t in trials if t.user_attrs.get(ERROR_ATTR)]
    first = f"; the first failure: {errors[0]}" if errors else ""
    return (
        f"search {plan.study_name}: no trial completed ({counts.failed} failed, "
        f"{counts.pruned} pruned of {len(trials)}), so there is no best trial; parent run "
        f"{counts.parent_run_id} is marked FAILED{first}. Change the space or the training "
        "overrides (a new study), or raise search.n_trials to try more trials in this one"
    )
