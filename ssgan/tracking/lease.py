"""One live job per run: a lease tag that a heartbeat renews and a dead job cannot hold."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import socket
import threading
import time
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from ssgan.tracking.store import TrackingError
from ssgan.tracking.tags import LEASE_TAG


class RunOwnedError(TrackingError):
    """Another live job is training the run."""


def _process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot; Linux), "" if it does not
    exist or has died: with the pid it tells a live owner from a dead one whose pid was
    reused. A zombie (dead, not yet reaped by its parent: a worker ``kill -9``ed while its
    launcher waits on another) is dead: it trains nothing and never renews its lease."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return "" if fields[0] in ("Z", "X") else fields[19]


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def lease_value(lease_s: float) -> str:
    return f"{_this_process()} {time.time() + lease_s:.0f}"


def refuse_if_owned(lease_s: float, run: Run) -> None:
    """RunOwnedError (one line) while another live job owns ``run``."""
    owner = live_owner(run)
    if owner is None:
        return
    held_by, _, expires = run.data.tags[LEASE_TAG].rpartition(" ")
    if held_by.split(":")[0] == socket.gethostname():
        frees = "the run is free as soon as that process ends"
    else:
        until = dt.datetime.fromtimestamp(float(expires), dt.UTC).isoformat(timespec="seconds")
        frees = (
            f"its lease runs until {until} and frees the run then, unless that job's "
            f"heartbeat renews it (every tracking.lease_s/3 = {lease_s / 3:g} s there)"
        )
    raise RunOwnedError(
        f"run {run.info.run_id} is being trained by another job ({owner}): one job trains a "
        f"run at a time; wait for it to end or stop it ({frees})"
    )


def live_owner(run: Run) -> str | None:
    """Who holds a RUNNING run's lease, if that job is alive; None when it is free."""
    value = run.data.tags.get(LEASE_TAG, "")
    if run.info.status != "RUNNING" or not value:
        return None
    return owner_alive(value, f"run {run.info.run_id}")


def owner_alive(value: str, holder: str) -> str | None:
    """Who holds the lease ``value`` (as :func:`lease_value` writes it), if that process is
    alive; None when the lease is free. ``holder`` names what the lease is on, for the
    warning about an unreadable value. A search's trials carry the same lease, so a
    trial and its run are judged alive or dead by one rule.

    The lease names host, pid and process start time, and an expiry that the owner's
    heartbeat keeps pushing forward. On the owner's host the process itself is checked,
    so a ``kill -9``ed job frees its lease at once; from another host the lease is free
    once it expired (at most ``tracking.lease_s`` after the owner died). A value that does
    not read as a lease counts as expired, with a warning line (it would otherwise keep
    the run from ever being resumed)."""
    owner, _, expires = value.rpartition(" ")
    host, pid, started = (owner.split(":") + ["", "", ""])[:3]
    try:
        expiry = float(expires)
        readable = bool(host) and pid.isdigit() and math.isfinite(expiry)
    except ValueError:
        readable = False
    if not readable:
        logging.getLogger("ssgan.tracking").warning(
            f"warning: {holder} has an unreadable lease {LEASE_TAG}={value!r}: taken as expired"
        )
        return None
    if host == socket.gethostname():
        alive = started != "" and _process_start(int(pid)) == started
    else:
        alive = expiry > time.time()
    return f"pid {pid} on {host}" if alive else None


class Heartbeat:
    """Renews a run's lease every third of ``lease_s`` from a background thread."""

    def __init__(self, client: MlflowClient, run_id: str, lease_s: float) -> None:
        self._stop = threading.Event()

        def beat() -> None:
            while not self._stop.wait(lease_s / 3):
                with contextlib.suppress(Exception):  # a missed beat only shortens the lease
                    client.set_tag(run_id, LEASE_TAG, lease_value(lease_s))

        self._thread = threading.Thread(target=beat, name="ssgan-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing; a renewal under way ends first (it cannot outlive the lease's
        removal when the run ends)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=60)


def release_lease(client: MlflowClient, run_id: str) -> None:
    """Remove a run's lease once it ended (FINISHED, FAILED, KILLED): no job owns it any
    more. Best effort: a lease left behind only says who last trained the run."""
    with contextlib.suppress(Exception):
        client.delete_tag(run_id, LEASE_TAG)
