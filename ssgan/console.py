"""Where a command's log lines go: the job's own lines to stdout, warnings to stderr."""

from __future__ import annotations

import logging
import sys


class InfoOnly(logging.Filter):
    """Below WARNING: the job's own lines go to stdout, warnings to stderr
    (conf/hydra/job_logging/ssgan.yaml, :func:`console_logging`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def console_logging() -> None:
    """For entry points without Hydra's job logging (ssgan.tune): the run's lines on the
    terminal as ``hydra/job_logging=ssgan`` shows them."""
    out, err = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    out.addFilter(InfoOnly())
    err.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[out, err])
