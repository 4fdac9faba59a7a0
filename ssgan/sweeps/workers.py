"""A search's workers: one in this process, ``search.workers`` local processes, or the jobs
of a Hydra launcher (``hydra/launcher=submitit_slurm``: a SLURM array, one worker a job).

Every worker is the same ``ssgan.tune`` command with ``search.workers=1``; they share the
study through its storage, so starting N of them is only starting, passing stop signals
on and waiting. Local workers run in their own sessions: a Ctrl-C reaches them once,
from here. The study, not the workers' exit statuses, holds the search's outcome: the
command succeeds when the search completed, even if a worker died on the way (another
worker continued its trial).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import IO

from optuna import Study
from optuna.trial import TrialState

from ssgan.errors import UserError
from ssgan.job_context import NO_JOB, JobContext
from ssgan.runtime import start_tensorflow
from ssgan.sweeps.plan import Plan, prepare, split_argv
from ssgan.sweeps.storage import load_existing
from ssgan.sweeps.study import PARENT_ATTR, budget, counts, outcome, run_search
from ssgan.sweeps.trial_lease import leased_by, retried_numbers

_WORKER_KEYS = ("search.workers", "search.threads_per_worker")


@dataclass(frozen=True)
class WorkerEnd:
    """How a worker process (or the launcher of the workers) ended: its name in the lines,
    its pid, its exit status as a shell shows it, and the signal that killed it, if one did."""

    name: str
    status: int
    pid: int | None = None
    killed_by: int | None = None

    def said(self) -> str:
        """'worker 0 (pid 123) was killed by SIGKILL', 'worker 1 (pid 124) exited 2'."""
        who = self.name if self.pid is None else f"{self.name} (pid {self.pid})"
        if self.killed_by is None:
            return f"{who} exited {self.status}"
        try:
            name = signal.Signals(self.killed_by).name
        except ValueError:
            name = f"signal {self.killed_by}"
        return f"{who} was killed by {name}"


def limit_threads(threads: int) -> None:
    """``search.threads_per_worker``: TensorFlow's thread pools of this worker (0: its own
    choice). Called before TensorFlow starts its runtime, the only time it can be set."""
    if threads <= 0:
        return
    start_tensorflow()  # quietly and with the allocator set, as a trial would start it
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def worker_argv(plan: Plan, argv: list[str]) -> list[str]:
    """The command line of one worker: the search's, as one worker, with its threads (by
    default the machine's cores shared out among the local workers)."""
    search, training, _ = split_argv(argv)
    kept = [a for a in search if a.lstrip("+~").split("=", 1)[0] not in _WORKER_KEYS]
    threads = plan.search.threads_per_worker
    if not threads and plan.search.workers > 1 and not plan.launcher:
        threads = max(1, (os.cpu_count() or 1) // plan.search.workers)
    return [
        *plan.config_flags,
        *kept,
        "search.workers=1",
        f"search.threads_per_worker={threads}",
        *training,
    ]


def _copy_lines(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


def start_local(plan: Plan, argv: list[str]) -> list[WorkerEnd]:
    """Run ``search.workers`` worker processes here; how each of them ended."""
    command = [sys.executable, "-m", "ssgan.tune", *worker_argv(plan, argv)]
    workers = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for _ in range(plan.search.workers)
    ]
    copiers = [
        threading.Thread(target=_copy_lines, args=(w.stdout, f"[worker {i}] "), daemon=True)
        for i, w in enumerate(workers)
    ]
    for copier in copiers:
        copier.start()

    def pass_on(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = {s: signal.signal(s, pass_on) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # Reap each worker as it ends, whichever ends first (waiting in order would leave
        # a dead worker a zombie for as long as an earlier one lives).
        while any(w.poll() is None for w in workers):
            time.sleep(0.2)
        for copier in copiers:
            copier.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return [_ended(f"worker {i}", w.wait(), w.pid) for i, w in enumerate(workers)]


def _ended(name: str, returncode: int, pid: int | None = None) -> WorkerEnd:
    """A process killed by signal N (Popen: -N) shows as a shell would show it: 128+N."""
    if returncode < 0:
        return WorkerEnd(name, 128 - returncode, pid, killed_by=-returncode)
    return WorkerEnd(name, returncode, pid)


def hydra_string(text: str) -> str:
    """``text`` as a quoted Hydra override value (Hydra unescapes only backslashes that
    precede a quote or end the string)."""
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text) + "'"


def start_with_launcher(plan: Plan, argv: list[str]) -> list[WorkerEnd]:
    """Run the workers as the jobs of a Hydra multirun (``ssgan.sweeps.worker_jobs``) with
    the launcher the command chose; how that process ended."""
    quoted = ",".join(hydra_string(a) for a in worker_argv(plan, argv))
    command = [
        sys.executable,
        "-m",
        "ssgan.sweeps.worker_jobs",
        "-m",
        f"worker=range(0,{plan.search.workers})",
        f"argv=[{quoted}]",
        *plan.launcher,
    ]
    return [_ended("the workers' launcher", subprocess.run(command).returncode)]


def run_worker(argv: list[str], plan: Plan | None = None, job: JobContext = NO_JOB) -> int:
    """One worker of the search ``argv`` describes, in this process: its summary or one
    line on stderr, and its exit status (2: bad input or no trial completed, 128+N:
    stopped by signal N; the same command continues the search). ``job``: the launcher's
    Hydra job the worker runs as (:mod:`ssgan.sweeps.worker_jobs`), if any."""
    try:
        plan = replace(plan or prepare(argv), job=job)
        limit_threads(plan.search.threads_per_worker)
        summary = run_search(plan)
    except UserError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stopped:  # Ctrl-C, or a stop signal (JobStopped)
        print(
            f"{str(stopped) or 'interrupted'}: this worker stopped (a trial it was training "
            "is queued again); run the same command to continue the search",
            file=sys.stderr,
        )
        return getattr(stopped, "exit_status", 130)
    print(summary.text())
    return 0


def search_outcome(plan: Plan, ended: list[WorkerEnd]) -> int:
    """After the workers ended: the command's exit status, which says whether the search
    completed (the study counts all ``search.n_trials`` trials). 0 with its summary, and a
    line for each worker that ended badly on the way; else one line saying how far it got
    and which workers ended how, and the worst worker's status (130: Ctrl-C, 137: kill
    -9), or 1 when every worker exited 0, 2 when no trial completed."""
    study = load_existing(plan.storage, plan.study_name)
    n_trials = plan.search.n_trials
    have = len(budget(study, n_trials).counted) if study else 0
    bad = [end for end in ended if end.status]
    if study is None or have < n_trials:
        how = "; ".join(end.said() for end in bad) or "every worker exited 0"
        print(
            f"error: the workers ended before the search did ({have} of {n_trials} trials; "
            f"{how}); their lines above say why; run the same command to continue it",
            file=sys.stderr,
        )
        return max((end.status for end in bad), default=1)
    try:
        summary = outcome(plan, study, study.user_attrs.get(PARENT_ATTR, ""))
    except UserError as err:  # every trial was counted, none completed
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    for end in bad:  # not a failure of the search: other workers finished its work
        said = f"{end.said()}{_continued(study, end)}"
        print(f"warning: {said}; the search completed", file=sys.stderr)
    print(summary.text())
    return 0


def _continued(study: Study, end: WorkerEnd) -> str:
    """' during trial 1; trial 4 continued it': the trial the worker held when it ended (its
    lease names the worker's pid; released, so failed and uncounted) and the counted
    trial that continued it."""
    if end.pid is None:
        return ""
    trials = study.get_trials(deepcopy=False)
    for held in trials:
        if held.state != TrialState.FAIL or counts(held) or not leased_by(held, end.pid):
            continue  # not a trial this worker held and gave up (released, queued again)
        after = [t.number for t in trials if counts(t) and held.number in retried_numbers(t)]
        if after:
            return f" during trial {held.number}; trial {after[0]} continued it"
    return ""
