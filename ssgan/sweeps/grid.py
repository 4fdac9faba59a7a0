"""A grid sweep (``python -m ssgan.train -m a=1,2``) as one unit in MLflow: a parent run
created before Hydra launches the jobs, named to them by a Hydra callback in the sweep
folder (their :class:`~ssgan.job_context.JobContext` reads it and they record it as
``mlflow.parentRunId``), finished after Hydra returns with the best job and a report
(:mod:`ssgan.report`)."""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ssgan.cli import (
    compose_config,
    multirun_overrides,
    overrides_only,
    search_path,
    sweep_expansions,
)
from ssgan.job_context import read_sweep_parent, write_sweep_parent
from ssgan.stopping import check_stop
from ssgan.tracking.lease import live_owner
from ssgan.tracking.runs import child_runs, get_run
from ssgan.tracking.store import TrackingError, TrackingStore
from ssgan.tracking.tags import (
    BEST_PARAM_PREFIX,
    BEST_RUN_ID_TAG,
    COMMAND_TAG,
    OVERRIDES_TAG,
    RUNS_FINISHED_TAG,
    RUNS_TAG,
    SWEEP_KIND_TAG,
    SWEPT_PARAMS_TAG,
)
from ssgan.tracking.tracker import RunTracker, create_run, reopen_run
from ssgan.training.job import STOP_SIGNALS, stop_signals

OBJECTIVE = "best/val_accuracy"
# Flags with which Hydra prints something and runs no job: no sweep parent run then.
_NO_JOBS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c"}
_NO_JOBS |= {"--shell-completion", "-sc"}


def is_grid_sweep(argv: list[str]) -> bool:
    """Whether ``python -m ssgan.train argv`` launches a multirun's jobs."""
    multirun = "-m" in argv or "--multirun" in argv
    return multirun and not _NO_JOBS.intersection(argv)


def jobs_run_here(argv: list[str]) -> bool:
    """Whether Hydra runs the sweep's jobs in this process (the basic launcher), not in
    worker processes or on a cluster (``hydra/launcher=parallel``, submitit)."""
    chosen = [a.split("=", 1)[1] for a in overrides_only(argv) if a.startswith("hydra/launcher=")]
    return not chosen or chosen[-1] == "basic"


# Exit statuses of a job stopped by Ctrl-C, SIGTERM or SIGUSR2 (128 + the signal).
_STOPPED = {128 + int(s) for s in STOP_SIGNALS}


@contextmanager
def grid_parent(parent: RunTracker | None, argv: list[str] | None = None) -> Iterator[None]:
    """Around Hydra's launch: end the sweep's parent run (if any) with the status the
    sweep ended with — FINISHED, KILLED when stopped (Ctrl-C, SIGTERM: a job exits with
    128 + the signal), FAILED otherwise. With jobs in this process, a stop signal at any
    point of the sweep (between jobs, after a job's last safe point) stops it: the next
    job ends before its run exists, where it used to clear the request and run."""
    if parent is None:
        yield
        return
    status = "FAILED"
    # Jobs in launcher processes get their own signals; what their launcher raises is one line.
    guard = stop_signals() if jobs_run_here(argv or []) else launcher_errors(parent)
    try:
        with guard:
            yield
            check_stop()  # asked to stop during the last job's export: the sweep ends
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except SystemExit as done:
        status = "FINISHED" if done.code in (0, None) else "FAILED"
        status = "KILLED" if done.code in _STOPPED else status
        raise
    finally:
        finish_grid(parent, status)


_FULL_ERROR = "HYDRA_FULL_ERROR"  # Hydra then raises what it would print a traceback of


@contextmanager
def launcher_errors(parent: RunTracker) -> Iterator[None]:
    """Jobs in launcher processes (submitit, joblib): a job that failed, or ended without
    a result (``kill -9``, out of memory or time), is one line on stderr naming its log and
    the runs it left RUNNING, and exit status 1, not the launcher's traceback."""
    before = os.environ.get(_FULL_ERROR)
    os.environ[_FULL_ERROR] = "1"
    try:
        yield
    except CompactHydraException as err:  # what Hydra prints as one line itself
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        print(f"error: {job_failure(err, parent)}", file=sys.stderr)
        sys.exit(1)
    finally:
        if before is None:
            os.environ.pop(_FULL_ERROR, None)
        else:
            os.environ[_FULL_ERROR] = before


def job_failure(err: Exception, parent: RunTracker) -> str:
    """One line for a job the launcher reports as failed: the job's own error line when
    its log has one, where its logs are, and how to continue the runs it left RUNNING."""
    text = str(err)
    result = re.search(r"(\S+)_result\.pkl", text)  # submitit: <folder>/<job>_<task>_result.pkl
    logs = re.findall(r"\S+_log\.(?:err|out)", text)
    if result:
        logs = [f"{result.group(1)}_log.{kind}" for kind in ("err", "out")]
    own = [
        line.strip()
        for log in logs
        if os.path.isfile(log)
        for line in Path(log).read_text(errors="replace").splitlines()
        if line.startswith("error: ")
    ]
    if own:
        what = f"a job of this sweep failed ({own[-1].removeprefix('error: ')})"
    elif "has not produced any output" in text:
        what = "a job of this sweep ended without a result (killed, or out of memory or time)"
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        what = f"a job of this sweep failed ({type(err).__name__}: {lines[0] if lines else ''})"
    if logs:
        what += f"; its log: {' and '.join(logs)}"
    try:
        runs = child_runs(parent.store, parent.run_id)
    except Exception:  # the line says what it can without the store
        runs = []
    running = [r for r in runs if r.info.status == "RUNNING"]
    # A run whose job is alive (another job of the sweep) is not left: the others are.
    held = {r.info.run_id: owner for r in running if (owner := live_owner(r))}
    left = [r.info.run_id for r in running if r.info.run_id not in held]
    if left:
        # A job's key holds its sweep folder: the same command finds the run in that folder.
        sweep = re.match(r"(.+)/\.submitit/", logs[0]) if logs else None
        folder = f" hydra.sweep.dir={sweep.group(1)}" if sweep else " in the same sweep folder"
        what += (
            f"; run {', '.join(left)} is left RUNNING: python -m ssgan.train "
            f"resume={left[0]} (or the same command with resume=auto{folder}) continues it "
            "from its last checkpoint"
        )
    for run_id, owner in held.items():
        what += f"; run {run_id} is still trained by {owner}"
    return what


def start_grid(argv: list[str]) -> RunTracker:
    """Create the parent run of the sweep ``argv`` asks for (:func:`parent_callback` then
    names it to the jobs), or reopen the one of an earlier attempt of the same sweep in the
    same folder that this one continues (:func:`earlier_attempt`)."""
    overrides = overrides_only(argv)
    search, config_name = search_path(argv, "config")  # --config-dir experiments too
    lines = multirun_overrides(config_name, overrides, search)  # with the config's sweep
    base = compose_config(config_name, next(sweep_expansions(lines))[0], search, with_hydra=True)
    store = TrackingStore(base.tracking)
    earlier = earlier_attempt(store, sweep_folder(base), overrides)
    if earlier is not None:
        parent = reopen_run(store, earlier)
        print(
            f"sweep parent run: {parent.run_id} (continued: its folder's earlier attempt)",
            flush=True,
        )
        return parent
    swept = {
        o.get_key_element(): ",".join(str(v) for v in o.sweep_string_iterator())
        for o in OverridesParser.create().parse_overrides(lines)
        if o.is_sweep_override()
    }
    parent = create_run(
        store,
        run_name="sweep-" + ",".join(k.split(".")[-1] for k in swept),
        tags={
            SWEEP_KIND_TAG: "grid",
            COMMAND_TAG: "python -m ssgan.train " + shlex.join(argv),
            OVERRIDES_TAG: " ".join(overrides),
            SWEPT_PARAMS_TAG: ",".join(swept),
        },
        params={f"sweep.{key}": values for key, values in swept.items()},
    )
    print(f"sweep parent run: {parent.run_id}", flush=True)
    return parent


def sweep_folder(cfg: DictConfig) -> Path | None:
    """The sweep folder ``hydra.sweep.dir`` names (None where it needs what only Hydra's
    launch knows: a folder named after the time is new anyway)."""
    try:
        return Path(str(cfg.hydra.sweep.dir))
    except OmegaConfBaseException:
        return None


# Where a sweep stopped before its end: Ctrl-C or a signal (KILLED), a job failed (FAILED).
_INTERRUPTED = ("KILLED", "FAILED")


def earlier_attempt(store: TrackingStore, folder: Path | None, overrides: list[str]) -> str | None:
    """The parent run an earlier attempt of this sweep left in ``folder``, with the same
    overrides (:func:`_same_sweep`), when this attempt continues it: that one ended early
    (its jobs' runs are under it; those continued or started now join them), or this one
    has ``resume=auto`` (whose jobs report the runs that finished, untrained: a sweep that
    finished is a sweep that is done)."""
    run_id = read_sweep_parent(folder) if folder is not None else None
    if run_id is None:
        return None
    try:
        run = get_run(store, run_id)
    except TrackingError:  # another store's run, or one deleted for good
        return None
    ended = _INTERRUPTED + (("FINISHED",) if "resume=auto" in overrides else ())
    same = _same_sweep(run.data.tags.get(OVERRIDES_TAG, "").split(" "))
    active = run.info.lifecycle_stage == "active"
    if not active or run.info.status not in ended or same != _same_sweep(overrides):
        return None
    return run_id


def _same_sweep(overrides: list[str]) -> str:
    """The overrides as the parent's tag joins them, less those a later attempt of the
    same sweep may add: ``resume=auto`` and the folder it is read from (which holds the
    earlier attempt's parent, so it is the same)."""
    added = ("resume=", "hydra.sweep.dir=")
    return " ".join(o for o in overrides if o and not o.startswith(added))


class SweepParentFile(Callback):
    """Hydra callback: at the sweep's start, before any job, write the parent run id into
    the sweep folder (:func:`ssgan.job_context.write_sweep_parent`), where every job finds
    it, whichever process or machine the launcher runs it in."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra_cfg = config.hydra
        write_sweep_parent(Path(hydra_cfg.runtime.cwd) / str(hydra_cfg.sweep.dir), self.run_id)


def parent_callback(parent: RunTracker | None) -> list[str]:
    """The Hydra override that adds :class:`SweepParentFile` for ``parent`` (none without)."""
    if parent is None:
        return []
    target = f"{SweepParentFile.__module__}.{SweepParentFile.__name__}"
    return [f"+hydra.callbacks.ssgan_sweep_parent={{_target_:{target},run_id:{parent.run_id}}}"]


def finish_grid(parent: RunTracker, status: str) -> None:
    """Record the best job (by ``best/val_accuracy``, the validation split) and the
    report on the parent run, then end it with ``status``."""
    from ssgan.sweeps.report import write_report  # plotting only once the sweep is over

    runs = child_runs(parent.store, parent.run_id)
    done = [r for r in runs if r.info.status == "FINISHED" and OBJECTIVE in r.data.metrics]
    tags = {RUNS_TAG: str(len(runs)), RUNS_FINISHED_TAG: str(len(done))}
    if done:
        best = max(done, key=lambda r: r.data.metrics[OBJECTIVE])
        declared = get_run(parent.store, parent.run_id).data.tags[SWEPT_PARAMS_TAG]
        swept = [k for k in declared.split(",") if k]
        tags[BEST_RUN_ID_TAG] = best.info.run_id
        tags |= {BEST_PARAM_PREFIX + k: best.data.params[k] for k in swept if k in best.data.params}
        parent.log_metrics({OBJECTIVE: best.data.metrics[OBJECTIVE]}, len(runs))
    parent.set_tags(tags)
    if done:  # a report compares finished runs: none, nothing to compare
        try:
            write_report(parent.store, parent.run_id, out_dir=None, ending=status)
        except Exception as err:  # the sweep's runs are recorded; a report is optional
            print(f"warning: no report on the parent run: {err}", file=sys.stderr)
    parent.finish(status)
    print(
        f"sweep parent run: {parent.run_id} ({status}); report: python -m ssgan.report "
        f"parent_run_id={parent.run_id}"
    )
