"""Which trials of a shared study are alive: each running trial carries its worker's lease,
and a trial whose worker died is failed once and queued again for the next free worker.

The lease is the one the trial's MLflow run carries (:mod:`ssgan.tracking.lease`): the
same owner (host, pid, process start), the same period (``tracking.lease_s``), the same
rule, so a trial and its run are never judged differently. We keep this instead of
Optuna's heartbeat because that exists only for RDB storages (not the journal file), and
it sees a ``kill -9``ed worker only after its grace period, where the lease sees it at
once on the same host.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import warnings
from collections.abc import Iterator

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from ssgan.tracking.lease import lease_value, owner_alive

LEASE_ATTR = "ssgan.lease"
# Optuna's own retry (it marks the retry with the trials it continues); Optuna calls its
# interface experimental, which users need not be warned about at every trial.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ExperimentalWarning)
    _retry = RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)


@contextlib.contextmanager
def trial_lease(trial: optuna.Trial, lease_s: float) -> Iterator[None]:
    """Hold ``trial``'s lease while the block runs: written now, renewed every third of
    ``lease_s`` from a background thread."""
    trial.set_user_attr(LEASE_ATTR, lease_value(lease_s))
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease_s / 3):
            # A missed renewal only shortens the lease; a trial told meanwhile is finished.
            with contextlib.suppress(Exception):
                trial.set_user_attr(LEASE_ATTR, lease_value(lease_s))

    thread = threading.Thread(target=renew, name="ssgan-trial-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def is_dead(trial: FrozenTrial, lease_s: float) -> bool:
    """A RUNNING trial whose worker is gone. A trial is taken before its worker writes its
    lease, and a retry carries its dead predecessor's lease until then: such a trial that
    started less than a lease period ago counts as alive."""
    value = trial.user_attrs.get(LEASE_ATTR)
    started = trial.datetime_start
    recent = started is not None and dt.datetime.now() - started < dt.timedelta(seconds=lease_s)
    if recent and (value is None or retry_of(trial) is not None):
        return False  # just taken: its worker is about to write its own lease
    if value is None:
        return True  # taken more than a lease period ago and never leased
    return owner_alive(str(value), f"trial {trial.number}") is None


def leased_by(trial: FrozenTrial, pid: int) -> bool:
    """Whether ``trial``'s lease names process ``pid`` of this host (as
    :func:`ssgan.tracking.lease.lease_value` writes it: ``host:pid:start expiry``)."""
    owner = str(trial.user_attrs.get(LEASE_ATTR, "")).rpartition(" ")[0]
    host, _, rest = owner.partition(":")
    return host == socket.gethostname() and rest.split(":")[0] == str(pid)


def retry_of(trial: FrozenTrial) -> int | None:
    """The number of the first trial that ``trial`` retries (None: not a retry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def retried_numbers(trial: FrozenTrial) -> list[int]:
    """Every earlier trial of the chain ``trial`` continues, oldest first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return list(RetryHeartbeatStaleTrialCallback.retry_history(trial))


def release(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Fail ``trial`` (not counted) and queue it again, with its parameters, attributes
    and reported values; False if another worker was first. Optuna's storages make the
    state change atomic, so exactly one worker requeues a dead trial."""
    try:
        study.tell(trial.number, state=TrialState.FAIL)
    except (UpdateFinishedTrialError, ValueError):  # finished meanwhile, by its owner or not
        return False
    _retry(study, study.get_trials(deepcopy=False)[trial.number])
    return True


def requeue_dead_trials(study: optuna.Study, lease_s: float) -> list[int]:
    """Release every RUNNING trial whose worker died; the numbers this worker released."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t.number for t in running if is_dead(t, lease_s) and release(study, t)]
