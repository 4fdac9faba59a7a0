"""An Optuna study of training runs: the plan a command line describes, the study and its
parent run, trials as child runs, recovery of a killed search, and the summary.

A hyperparameter search with Optuna. The space and budget come from ``conf/search/``;
every other override is applied to every trial (``experiment=smoke``, ``data=svhn``…).
Each trial is a normal training run composed by Hydra, tracked in MLflow as a child of
the search's parent run; its objective is the best validation accuracy (never the test
set). After every epoch the trial reports its validation accuracy and the pruner may
stop it: the run then ends FINISHED with the tag ``ssgan.pruned=true`` and the metrics
it logged so far.

The study lives in ``optuna.db`` beside the MLflow store. The same command continues a
killed search: the trial that was running is resumed from its last checkpoint (or, if
its run had already ended, recorded as it ended), so no trial is counted twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from ssgan.cli import check_overrides, compose_config, refuse_control_characters
from ssgan.config import flatten, validate_train_config
from ssgan.errors import ConfigError, UserError
from ssgan.stopping import check_stop
from ssgan.sweeps import space as space_lib
from ssgan.tracking.runs import child_runs
from ssgan.tracking.tracker import RunTracker, create_run, reopen_run
from ssgan.training.interface import NonFiniteLossError, StopTraining
from ssgan.training.job import stop_signals
from ssgan.training.run import train

OBJECTIVE = "val/accuracy"  # reported per epoch; the trial's value is its best epoch's
ROLE_ATTR = "ssgan.role"  # baseline | enqueued | sampled
INTERRUPTED_ATTR = "ssgan.interrupted"
PARENT_ATTR = "ssgan.parent_run_id"


@dataclass
class Plan:
    """A checked search: nothing has been written when one exists."""

    search: DictConfig
    base: DictConfig  # the composed training config every trial starts from
    base_overrides: list[str]
    params: list[space_lib.Param]
    first_trials: list[tuple[dict[str, Any], str]]  # (values, role) evaluated first
    study_name: str
    storage: str
    command: str


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(overrides of the search config, overrides of every trial's training config)."""
    search, training = [], []
    for arg in argv:
        if arg in ("-m", "--multirun"):
            raise ConfigError("a search runs its own trials: drop -m (use search.space to sweep)")
        if arg.startswith("-"):
            raise ConfigError(f"unknown option {arg!r}: ssgan.tune takes overrides only (--help)")
        key = arg.lstrip("+~").split("=", 1)[0]
        (search if key == "search" or key.startswith("search.") else training).append(arg)
    return search, training


def prepare(argv: list[str]) -> Plan:
    """Compose and check everything; raise ConfigError (one line) before any write."""
    search_overrides, base_overrides = split_argv(argv)
    refuse_control_characters(argv)
    try:
        parsed = OverridesParser.create().parse_overrides(base_overrides)
    except HydraException as err:
        raise ConfigError(f"cannot parse overrides: {str(err).splitlines()[0]}") from err
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(
                f"override '{override.input_line}': trials take one value per key; "
                "search over a key with search.space instead"
            )
    search = compose_config("tune", search_overrides).search
    space_lib.check_search(search)
    check_overrides("config", base_overrides, validate_train_config)
    base = compose_config("config", base_overrides)
    if base.resume:
        raise ConfigError("resume= is not for searches: rerun the same ssgan.tune command")
    params = space_lib.parse_space(search.space)
    space_lib.check_against(params, base)
    first: list[tuple[dict[str, Any], str]] = []
    if search.baseline:
        first.append((space_lib.base_values(params, base), "baseline"))
    first += [(values, "enqueued") for values in space_lib.enqueued_values(search, params)]
    return Plan(
        search=search,
        base=base,
        base_overrides=base_overrides,
        params=params,
        first_trials=first,
        study_name=space_lib.study_name(search, base_overrides),
        storage=space_lib.storage_url(search, str(base.tracking.uri)),
        command="python -m ssgan.tune " + shlex.join(argv),
    )


@contextlib.contextmanager
def study_lock(plan: Plan) -> Iterator[None]:
    """One process per study. Under the lock a RUNNING trial can only be one whose
    process died, so it is safe to resume it. (A non-SQLite storage is not locked.)"""
    if not plan.storage.startswith("sqlite:///"):
        yield
        return
    db = Path(plan.storage[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(f".{plan.study_name}.lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise UserError(
                f"study {plan.study_name} is being run by another ssgan.tune process "
                "(one process per study; wait for it or stop it)"
            ) from err
        yield


def open_study(plan: Plan) -> optuna.Study:
    problem = space_lib.storage_problem(plan.storage)
    if problem:  # a truncated or overwritten optuna.db: say so before any run is written
        raise UserError(problem)
    study = optuna.create_study(
        study_name=plan.study_name,
        storage=plan.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=space_lib.make_sampler(plan.search),
        pruner=space_lib.make_pruner(plan.search.pruner),
    )
    # A search continued after a kill must not draw the values its first process drew
    # again: the sampler's stream goes on from the number of trials the study holds (0 for
    # a new study, so an uninterrupted search still proposes the same trials).
    study.sampler = space_lib.make_sampler(plan.search, offset=len(study.trials))
    if not study.user_attrs.get("ssgan.enqueued"):
        for values, role in plan.first_trials:
            study.enqueue_trial(values, user_attrs={ROLE_ATTR: role})
        study.set_user_attr("ssgan.enqueued", True)
    return study


def parent_run(plan: Plan, study: optuna.Study) -> RunTracker:
    """The search's parent run: created once, reopened when the search continues."""
    existing = study.user_attrs.get(PARENT_ATTR)
    if existing:
        parent = reopen_run(plan.base.tracking, existing)
    else:
        params = {f"search.{k}": v for k, v in flatten(plan.search).items()}
        params.pop("search.n_trials")
        params.pop("search.storage")
        parent = create_run(
            plan.base.tracking,
            run_name=f"search-{plan.study_name}",
            tags={
                "ssgan.sweep_kind": "search",
                "ssgan.command": plan.command,
                "ssgan.overrides": " ".join(plan.base_overrides),
                "ssgan.optuna_study": plan.study_name,
                "ssgan.optuna_storage": plan.storage,
                "ssgan.swept_params": ",".join(p.key for p in plan.params),
            },
            params=params,
        )
        parent.log_text(OmegaConf.to_yaml(plan.search), "search/search.yaml")
        parent.log_text(OmegaConf.to_yaml(plan.base), "search/base_config.yaml")
        study.set_user_attr(PARENT_ATTR, parent.run_id)
    parent.set_tags({"ssgan.n_trials": str(plan.search.n_trials)})
    return parent


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that used up budget: completed, pruned, or failed while training."""
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [
        t
        for t in study.get_trials(deepcopy=False, states=done)
        if not t.user_attrs.get(INTERRUPTED_ATTR)
    ]


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
                tags={"ssgan.pruned": "true", "ssgan.pruned_at_epoch": str(epoch)},
            )


def trial_overrides(plan: Plan, values: dict[str, Any]) -> list[str]:
    return [f"{key}={space_lib.format_value(value)}" for key, value in values.items()]


def run_trial(
    plan: Plan,
    study: optuna.Study,
    trial: optuna.Trial,
    parent_id: str,
    resume: str | None = None,
    reported: set[int] | None = None,
) -> None:
    """Train one trial (or resume its run) and tell the study how it ended."""
    values = {p.key: trial.params[p.key] for p in plan.params}
    overrides = trial_overrides(plan, values)
    cfg = compose_config(
        "config",
        plan.base_overrides
        + overrides
        + [f"tracking.run_name={plan.search.name}-trial-{trial.number}"],
    )
    cfg.resume = resume
    tags = {
        "mlflow.parentRunId": parent_id,
        "ssgan.trial": str(trial.number),
        "ssgan.optuna_study": plan.study_name,
        "ssgan.overrides": " ".join(plan.base_overrides + overrides),
        "ssgan.trial_role": str(trial.user_attrs.get(ROLE_ATTR, "sampled")),
    }
    print(f"trial {trial.number}: {' '.join(overrides)}" + (" (resumed)" if resume else ""))
    try:
        summary = train(cfg, on_epoch_end=EpochReporter(trial, reported or set()), tags=tags)
    except NonFiniteLossError as err:
        # Divergence is an outcome of these settings, not a broken search: it uses budget.
        trial.set_user_attr("ssgan.error", str(err))
        study.tell(trial, state=TrialState.FAIL)
        print(f"trial {trial.number}: failed ({err})")
        return
    trial.set_user_attr("mlflow_run_id", summary["run_id"])
    if summary.get("stopped_early"):
        study.tell(trial, state=TrialState.PRUNED)
        print(f"trial {trial.number}: {summary['stopped_early']}")
    else:
        study.tell(trial, summary["best_val_accuracy"])
        print(f"trial {trial.number}: best val accuracy {summary['best_val_accuracy']:.4f}")


def recover(plan: Plan, study: optuna.Study, parent_id: str) -> None:
    """Settle trials left RUNNING by a killed search (we hold the study's lock)."""
    runs = {r.data.tags.get("ssgan.trial"): r for r in child_runs(plan.base.tracking, parent_id)}
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = optuna.trial.Trial(study, frozen._trial_id)
        run = runs.get(str(frozen.number))
        if run is None:  # killed before its run existed: nothing to resume, not counted
            trial.set_user_attr(INTERRUPTED_ATTR, True)
            study.tell(trial, state=TrialState.FAIL)
        elif run.info.status == "FINISHED":  # killed after the run ended, before the tell
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            if run.data.tags.get("ssgan.pruned") == "true":
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, run.data.metrics["best/val_accuracy"])
        elif run.info.status == "FAILED":
            study.tell(trial, state=TrialState.FAIL)
        else:  # RUNNING (kill -9) or KILLED (Ctrl-C): continue from its checkpoint
            run_trial(
                plan, study, trial, parent_id, run.info.run_id, set(frozen.intermediate_values)
            )


def run_search(plan: Plan) -> dict[str, Any]:
    """Run the search to its budget. A stop signal (Ctrl-C, SIGTERM) anywhere in it, also
    between trials or after a trial's last safe point, ends it with the parent KILLED
    (JobStopped, a KeyboardInterrupt): the same command continues it."""
    with stop_signals():
        study = open_study(plan)
        parent = parent_run(plan, study)
        print(f"search {plan.study_name}: parent run {parent.run_id}")
        return _search(plan, study, parent)


def _search(plan: Plan, study: optuna.Study, parent: RunTracker) -> dict[str, Any]:
    try:
        recover(plan, study, parent.run_id)
        distributions = {p.key: p.distribution for p in plan.params}
        while len(counted(study)) < plan.search.n_trials:
            check_stop()  # a stop that came after the last trial's last safe point
            trial = study.ask(distributions)
            run_trial(plan, study, trial, parent.run_id)
        check_stop()
        summary = finish(plan, study, parent)
    except KeyboardInterrupt as err:
        parent.finish("KILLED", error=str(err) or "interrupted (Ctrl-C)")
        raise
    except BaseException as err:
        parent.finish("FAILED", error=f"{type(err).__name__}: {err}")
        raise
    return summary


def finish(plan: Plan, study: optuna.Study, parent: RunTracker) -> dict[str, Any]:
    """Record the outcome on the parent run (best trial, counts, report) and end it."""
    from ssgan.sweeps.report import write_report  # plots and tables only when a search ends

    trials = counted(study)
    states = [t.state for t in trials]
    summary: dict[str, Any] = {
        "parent_run_id": parent.run_id,
        "study": plan.study_name,
        "complete": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
    }
    tags = {f"ssgan.trials_{k}": str(summary[k]) for k in ("complete", "pruned", "failed")}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = max(complete, key=lambda t: t.value)
        summary |= {"best_trial": best.number, "best_value": best.value, "best_params": best.params}
        summary["best_run_id"] = best.user_attrs.get("mlflow_run_id", "")
        tags |= {"ssgan.best_trial": str(best.number), "ssgan.best_run_id": summary["best_run_id"]}
        tags |= {f"ssgan.best.{k}": space_lib.format_value(v) for k, v in best.params.items()}
        parent.log_metrics({"best/val_accuracy": best.value}, len(trials))
        baseline = [t for t in complete if t.user_attrs.get(ROLE_ATTR) == "baseline"]
        if baseline:
            summary["baseline_value"] = baseline[0].value
            parent.log_metrics({"baseline/val_accuracy": baseline[0].value}, len(trials))
    parent.set_tags(tags)
    if not complete:
        # Nothing to choose from: the search did not do its job, whatever its budget says.
        problem = no_trial_completed(plan, summary, trials)
        with contextlib.suppress(Exception):  # e.g. no run logged its metrics: optional
            write_report(plan.base.tracking, parent.run_id, out_dir=None)
        raise UserError(problem)  # run_search marks the parent FAILED with it
    summary["report"] = str(write_report(plan.base.tracking, parent.run_id, out_dir=None))
    parent.finish("FINISHED")
    return summary


def no_trial_completed(
    plan: Plan, summary: dict[str, Any], trials: list[optuna.trial.FrozenTrial]
) -> str:
    """The one line for a search whose trials all failed or were pruned."""
    errors = [t.user_attrs["ssgan.error"] for t in trials if t.user_attrs.get("ssgan.error")]
    first = f"; the first failure: {errors[0]}" if errors else ""
    return (
        f"search {plan.study_name}: no trial completed ({summary['failed']} failed, "
        f"{summary['pruned']} pruned of {len(trials)}), so there is no best trial; parent run "
        f"{summary['parent_run_id']} is marked FAILED{first}. Change the space or the training "
        "overrides (a new study), or raise search.n_trials to try more trials in this one"
    )


def summary_text(summary: dict[str, Any]) -> str:
    """What ``python -m ssgan.tune`` prints when a search ends."""
    lines = [
        f"parent_run_id: {summary['parent_run_id']}",
        f"trials: {summary['complete']} complete, {summary['pruned']} pruned, "
        f"{summary['failed']} failed",
    ]
    if "best_trial" in summary:
        params = " ".join(
            f"{k}={space_lib.format_value(v)}" for k, v in summary["best_params"].items()
        )
        lines.append(
            f"best: trial {summary['best_trial']} (run {summary['best_run_id']}) "
            f"val accuracy {summary['best_value']:.4f}: {params}"
        )
    if "baseline_value" in summary:
        lines.append(
            f"baseline (the base config's values): val accuracy {summary['baseline_value']:.4f}"
        )
    lines.append(f"report: python -m ssgan.report {summary['parent_run_id']}")
    return "\n".join(lines)
