"""How a training job ends when it is asked to stop, and which job it is.

Schedulers stop a job with a signal: SLURM sends SIGTERM at cancellation or preemption
(and, with ``--signal``, SIGUSR2 before the time limit, which submitit uses to requeue);
a terminal sends SIGINT. Within :func:`stop_signals` each only records a stop request
(:mod:`ssgan.stopping`), and the job raises :class:`JobStopped` at its next safe point:
right after a compiled training call (with a checkpoint written first, see
:func:`checkpoint_before_stop`), between chunks of generated data, before the run is
opened and before export. The run is then marked KILLED.

:func:`job_key` names the job across restarts (``resume=auto``): a requeued SLURM job, a
submitit requeue or a plain rerun of the same command gets the same key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from ssgan.stopping import JobStopped, clear_stop, request_stop, stop_requested

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)

_checkpoint_on_stop = False
_previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    first = not stop_requested()
    request_stop(signum)
    if first:
        # os.write, not print: print is not safe inside a signal handler (a handler that
        # interrupts a print raises "reentrant call").
        name = signal.Signals(signum).name
        os.write(2, f"{name} received: stopping at the next safe point\n".encode())


def install_handlers() -> None:
    """(Re)install the stop handlers. Also needed after TensorFlow's multi-worker runtime
    starts: its coordination service installs a C-level SIGTERM handler of its own (for
    its preemption notifier) that replaces Python's and swallows the signal."""
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _on_signal)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGUSR2 request a stop that the job honours
    at its next safe point. Handlers are only installed from the main thread; the
    previous ones come back afterwards. Nested (a search's trials, each a job inside the
    search's block) the inner block changes nothing: a stop asked for between two inner
    jobs, or after one's last safe point, stays pending for the outer job to honour."""
    if threading.current_thread() is not threading.main_thread() or _previous:
        yield
        return
    clear_stop()
    for signum in STOP_SIGNALS:
        _previous[signum] = signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in _previous.items():
            signal.signal(signum, handler)
        _previous.clear()


@contextlib.contextmanager
def checkpoints_on_stop(enabled: bool = True) -> Iterator[None]:
    """Within the block a pending stop first writes a checkpoint (``enabled=False``: not
    for multi-worker jobs, whose save needs every worker and only one may have been
    signalled)."""
    global _checkpoint_on_stop
    _checkpoint_on_stop = enabled
    try:
        yield
    finally:
        _checkpoint_on_stop = False


def checkpoint_before_stop() -> bool:
    """A stop is pending and the loop should save a checkpoint before it stops."""
    return _checkpoint_on_stop and stop_requested()


def pass_on(stopped: JobStopped) -> None:
    """Hand the signal to the handler that was installed before ours, once the run is
    marked KILLED and :func:`stop_signals` has put that handler back: submitit's SIGUSR2
    handler requeues the job this way."""
    previous = signal.getsignal(stopped.signum)
    if callable(previous) and previous not in (signal.default_int_handler, _on_signal):
        previous(stopped.signum, None)


def job_key(overrides: list[str], hydra_job: dict[str, str], config: str = "") -> str:
    """A stable name for "this job" across restarts: the command's overrides, the
    fingerprint of the config they composed (``config``: two commands with the same
    overrides but another ``--config-dir`` or experiment file are two jobs), the Hydra
    sweep and job number, or, outside a sweep, the scheduler's job id (SLURM array job and
    task id, or job id) when present. A sweep's job is named by its folder and number,
    which a requeue and the sweep's command run again in that folder share (the scheduler
    gives the latter new ids). ``resume=`` itself is not part of it."""
    parts = sorted(o for o in overrides if not o.startswith(("resume=", "hydra")))
    parts += [f"config={config}"] if config else []
    parts += [f"{k}={v}" for k, v in sorted(hydra_job.items())]
    if hydra_job:
        return _digest(parts)
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if os.environ.get(name):
            parts.append(f"{name}={os.environ[name]}")
    if os.environ.get("SLURM_JOB_ID") and not os.environ.get("SLURM_ARRAY_JOB_ID"):
        parts.append(f"SLURM_JOB_ID={os.environ['SLURM_JOB_ID']}")
    return _digest(parts)


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
