"""How a training job ends when it is asked to stop, and which job it is.

Schedulers stop a job with a signal: SLURM sends SIGTERM at cancellation or preemption
(and, with ``--signal``, SIGUSR2 before the time limit, which submitit uses to requeue);
a terminal sends SIGINT. :func:`stop_signals` turns each into :class:`JobStopped`,
raised at the next safe point of the training loop (right after a compiled call, so a
checkpoint can be written first) or at once outside it. The run is then marked KILLED.

:func:`job_key` names the job across restarts (``resume=auto``): a requeued SLURM job, a
submitit requeue or a plain rerun of the same command gets the same key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class JobStopped(KeyboardInterrupt):
    """A signal asked the job to stop; a KeyboardInterrupt, so Ctrl-C and SIGTERM take
    the same path (run marked KILLED, resumable)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


_pending: int | None = None
_deferring = False
_previous: dict[int, Any] = {}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _deferring and _pending is None:
        _pending = signum  # the loop stops at its next safe point
        return
    raise JobStopped(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGUSR2 raise :class:`JobStopped` (a second
    signal while a stop is pending raises at once). Handlers are only installed from the
    main thread; the previous ones come back afterwards."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending = None
    for signum in STOP_SIGNALS:
        _previous[signum] = signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in _previous.items():
            signal.signal(signum, handler)
        _previous.clear()


@contextlib.contextmanager
def safe_points(enabled: bool = True) -> Iterator[None]:
    """Within the block a stop signal only sets a flag that :func:`check_stop` raises at
    a safe point (``enabled=False``: signals raise at once, e.g. for multi-worker jobs,
    whose workers could not agree on the step to stop at)."""
    global _deferring
    _deferring = enabled
    try:
        yield
    finally:
        _deferring = False


def stop_requested() -> bool:
    return _pending is not None


def check_stop() -> None:
    """Raise :class:`JobStopped` if a stop signal arrived since the loop last looked."""
    if _pending is not None:
        raise JobStopped(_pending)


def pass_on(stopped: JobStopped) -> None:
    """Hand the signal to the handler that was installed before ours, once the run is
    marked KILLED and :func:`stop_signals` has put that handler back: submitit's SIGUSR2
    handler requeues the job this way."""
    previous = signal.getsignal(stopped.signum)
    if callable(previous) and previous not in (signal.default_int_handler, _on_signal):
        previous(stopped.signum, None)


def job_key(overrides: list[str], hydra_job: dict[str, str]) -> str:
    """A stable name for "this job" across restarts: the command's overrides, the Hydra
    sweep and job number, and the scheduler's job id (SLURM array job and task id, or
    job id) when present. ``resume=`` itself is not part of it."""
    parts = sorted(o for o in overrides if not o.startswith(("resume=", "hydra")))
    parts += [f"{k}={v}" for k, v in sorted(hydra_job.items())]
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if os.environ.get(name):
            parts.append(f"{name}={os.environ[name]}")
    if os.environ.get("SLURM_JOB_ID") and not os.environ.get("SLURM_ARRAY_JOB_ID"):
        parts.append(f"SLURM_JOB_ID={os.environ['SLURM_JOB_ID']}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
