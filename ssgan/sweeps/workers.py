"""A search's workers: one in this process, ``search.workers`` local processes, or the jobs
of a Hydra launcher (``hydra/launcher=submitit_slurm``: a SLURM array, one worker a job).

Every worker is the same ``ssgan.tune`` command with ``search.workers=1``; they share the
study through its storage, so starting N of them is only starting, passing stop signals
on and waiting. Local workers run in their own sessions: a Ctrl-C reaches them once,
from here. The study, not the workers' exit statuses, holds the search's outcome.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import IO

from ssgan.errors import UserError
from ssgan.job_context import NO_JOB, JobContext
from ssgan.sweeps.plan import Plan, prepare, split_argv
from ssgan.sweeps.storage import load_existing
from ssgan.sweeps.study import PARENT_ATTR, outcome, run_search

_WORKER_KEYS = ("search.workers", "search.threads_per_worker")


def limit_threads(threads: int) -> None:
    """``search.threads_per_worker``: TensorFlow's thread pools of this worker (0: its own
    choice). Called before TensorFlow starts its runtime, the only time it can be set."""
    if threads <= 0:
        return
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
    return [*kept, "search.workers=1", f"search.threads_per_worker={threads}", *training]


def _copy_lines(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


def start_local(plan: Plan, argv: list[str]) -> int:
    """Run ``search.workers`` worker processes here; the worst exit status of them."""
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
        codes = [w.wait() for w in workers]
        for copier in copiers:
            copier.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # A worker killed by signal N (Popen: -N) ends this command as a shell would show it.
    return max((128 - code if code < 0 else code for code in codes), default=0)


def hydra_string(text: str) -> str:
    """``text`` as a quoted Hydra override value (Hydra unescapes only backslashes that
    precede a quote or end the string)."""
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text) + "'"


def start_with_launcher(plan: Plan, argv: list[str]) -> int:
    """Run the workers as the jobs of a Hydra multirun (``ssgan.sweeps.worker_jobs``) with
    the launcher the command chose; that process's exit status."""
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
    return subprocess.run(command).returncode


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


def search_outcome(plan: Plan) -> int:
    """After the workers ended: the search's summary, or one line saying how far it got."""
    study = load_existing(plan.storage, plan.study_name)
    parent_id = study.user_attrs.get(PARENT_ATTR, "") if study else ""
    try:
        summary = outcome(plan, study, parent_id) if study else None
    except UserError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if summary is None or summary.n_counted < plan.search.n_trials:
        have = summary.n_counted if summary else 0
        print(
            f"error: the workers ended before the search did ({have} of "
            f"{plan.search.n_trials} trials); their lines above say why; run the same "
            "command to continue it",
            file=sys.stderr,
        )
        return 1
    print(summary.text())
    return 0
