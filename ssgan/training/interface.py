"""The training loop's interface: the tracker it records through, the hook it calls after
each epoch, and the exceptions it raises or honours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ssgan.errors import UserError


class Tracker(Protocol):
    """What the loop records through: the run's id, metrics per step, sample images, and a
    flush before each checkpoint. :class:`ssgan.tracking.tracker.RunTracker` records to
    MLflow; ``FollowerTracker`` (a multi-worker job's other workers) and the benchmark's
    tracker discard."""

    run_id: str

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_image(self, image: np.ndarray, artifact_file: str) -> None: ...

    def flush(self) -> None: ...

    def log_checkpoint(self, step: int) -> None: ...


class CheckpointError(UserError):
    """No checkpoint of the run can be read back, or one cannot be written."""


class NonFiniteLossError(UserError):
    """A loss became NaN or infinite: training diverged."""


class StopTraining(Exception):  # noqa: N818 (a request, not an error)
    """Raised by an ``on_epoch_end`` hook to end training early (e.g. a pruned search
    trial). The run keeps what it logged, ends FINISHED with ``tags`` and is not exported."""

    def __init__(self, reason: str, tags: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tags = tags or {}


# Called after each epoch's evaluation with the 1-based epoch and that epoch's metrics.
EpochHook = Callable[[int, dict[str, float]], None]
