"""The stop request a signal leaves for the job's next safe point.

A signal handler only records the request (:func:`request_stop`); long-running code
looks at it between units of work it can abandon cleanly (:func:`check_stop`: after a
compiled training call, between chunks of generated data) and raises
:class:`JobStopped` there. Raising from the handler itself would land in arbitrary
code: inside a ``fork`` hook the exception is printed as "ignored" and lost, inside a
checkpoint write it leaves half a file. The base layer holds it so that data
generation, which sits below training, can stop at its own safe points too.
"""

from __future__ import annotations

import signal


class JobStopped(KeyboardInterrupt):
    """A signal asked the job to stop; a KeyboardInterrupt, so Ctrl-C and SIGTERM take
    the same path (run marked KILLED, resumable)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(f"stopped by {self.signal_name}")

    def __reduce__(self) -> tuple[type, tuple[int]]:
        # Rebuilt from the signal number (the default would pass the message back in),
        # so it crosses process boundaries intact (a worker pool's results).
        return (JobStopped, (self.signum,))

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


_pending: int | None = None


def request_stop(signum: int) -> None:
    """Record a stop request; the first signal wins. Safe to call from a signal handler."""
    global _pending
    if _pending is None:
        _pending = int(signum)


def stop_requested() -> bool:
    return _pending is not None


def check_stop() -> None:
    """Raise :class:`JobStopped` if a stop was requested: call it at a safe point."""
    if _pending is not None:
        raise JobStopped(_pending)


def clear_stop() -> None:
    """Forget any request (a new job starts in this process)."""
    global _pending
    _pending = None
