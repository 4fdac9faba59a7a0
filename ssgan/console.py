"""Where a command's log lines go: the job's own lines to stdout, warnings to stderr, and
what a command prints (its summary, its ``error:`` line) also into the job's log file."""

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


def to_log_files(text: str, level: int = logging.INFO) -> None:
    """Write ``text`` into the job's log file (Hydra's ``<job name>.log``, the file handler
    of conf/hydra/job_logging/ssgan.yaml) and not to the terminal: for lines the command
    prints itself. Nothing without a log file (tests, ``ssgan.tune``)."""
    record = logging.LogRecord("ssgan", level, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and level >= handler.level:
            handler.handle(record)


def echo(text: str, error: bool = False) -> None:
    """Print ``text`` (to stderr for an error) and write it into the job's log file."""
    print(text, file=sys.stderr if error else sys.stdout)
    to_log_files(text, logging.ERROR if error else logging.INFO)
