"""Wait for the other workers of a multi-worker job before TensorFlow does.

TensorFlow's own wait, inside ``MultiWorkerMirroredStrategy()``, holds the interpreter
in C++ until every worker has joined: it prints nothing, runs no Python signal handler
and has its own long timeout. So each worker first listens on its own ``TF_CONFIG``
address and waits in Python until every other worker's address answers, saying whom it
waits for, within ``train.worker_wait_s``, and honouring stop signals. Once all answer,
the listener is closed and TensorFlow's server takes the port over (a worker still
polling sees it answer again within a moment).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator

from ssgan.errors import ConfigError, UserError
from ssgan.stopping import check_stop
from ssgan.training.distribute import WorkerRole

log = logging.getLogger(__name__)

POLL_S = 0.5
REPORT_EVERY_S = 10.0


def wait_for_workers(role: WorkerRole, limit_s: float) -> None:
    """Return once every other worker of the job answers on its address; raise
    :class:`UserError` naming the missing ones after ``limit_s`` seconds."""
    if role.count == 1 or not role.tasks:
        return
    own_name, own_address = role.tasks[role.index]
    others = [task for i, task in enumerate(role.tasks) if i != role.index]
    with _listening(own_name, own_address):
        start = time.monotonic()
        next_report = start
        while missing := [task for task in others if not _answers(task[1])]:
            check_stop()
            waited = time.monotonic() - start
            named = ", ".join(f"{name} ({address})" for name, address in missing)
            if waited >= limit_s:
                raise UserError(
                    f"{named} did not start within train.worker_wait_s={limit_s:g} s: start "
                    "the same command there with its TF_CONFIG, or raise train.worker_wait_s"
                )
            if time.monotonic() >= next_report:
                log.warning(
                    "waiting for %s to start (%.0f s of train.worker_wait_s=%g)",
                    named,
                    waited,
                    limit_s,
                )
                next_report += REPORT_EVERY_S
            time.sleep(POLL_S)


@contextlib.contextmanager
def _listening(name: str, address: str) -> Iterator[None]:
    """Accept connections on this worker's address while it waits, so that the others
    see it has started."""
    _, port = _split(address)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", port))
    except OSError as err:
        listener.close()
        raise UserError(
            f"TF_CONFIG: this worker's address {address} ({name}) cannot be used "
            f"({err.strerror}): another process holds port {port}"
        ) from None
    listener.listen(64)
    try:
        yield
    finally:
        listener.close()


def _answers(address: str) -> bool:
    try:
        socket.create_connection(_split(address), timeout=1.0).close()
    except OSError:
        return False
    return True


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"TF_CONFIG: {address!r} is not host:port")
    return host.strip("[]"), int(port)
