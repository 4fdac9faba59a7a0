"""TensorFlow's start in a process: one explicit call, :func:`start_tensorflow`, that the
commands running TensorFlow make before anything imports it.

Importing ``ssgan`` does not import TensorFlow (``python -m ssgan.report`` does not pay
for it). A command that trains, exports, promotes, predicts or benchmarks calls
:func:`start_tensorflow` first, which

* sets the memory allocator (:mod:`ssgan.allocator`) before TensorFlow allocates
  anything: freed tensors are reused, not unmapped (``SSGAN_MALLOC=system`` keeps glibc's
  defaults);
* imports TensorFlow quietly: its C++ start-up lines (oneDNN and CUDA notices, also at
  device discovery) are written to file descriptor 2 before any logging setting applies,
  so they are captured and only shown if the import fails (``TF_CPP_MIN_LOG_LEVEL``
  defaults to 3). Set ``SSGAN_TF_VERBOSE=1`` (and ``TF_CPP_MIN_LOG_LEVEL=0``) to see
  everything;
* keeps scikit-learn out of TensorFlow's start: Keras imports it, when it is installed
  (MLflow installs it), for its scikit-learn wrappers, which nothing here uses; that was
  about 1 s of every command's start on a 2-core AMD EPYC (``experiments/test_timing``).
  It is hidden during the import only: a later ``import sklearn`` works, and
  ``keras.wrappers`` is the one thing left without it in the process;
* sets the ``absl`` and ``tensorflow`` loggers to WARNING: TensorFlow's Python side logs
  at INFO (e.g. checkpoint sharding timings), which Hydra's job logging would print on
  every save.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

from ssgan.allocator import configure as configure_allocator

VERBOSE_ENV = "SSGAN_TF_VERBOSE"


def start_tensorflow() -> None:
    """Set the allocator, import TensorFlow quietly and quieten its loggers (once; a
    later call does nothing new). Call it before importing a module that imports
    TensorFlow, or its start-up lines are printed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    configure_allocator()
    _import_tensorflow_quietly()
    for name in ("absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules or os.environ.get(VERBOSE_ENV) == "1":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            with _without_sklearn():
                import tensorflow

            # Device discovery prints its own notices (cuInit on CPU-only hosts): do it here.
            tensorflow.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def _without_sklearn() -> Iterator[None]:
    """``import sklearn`` fails inside the block (a ``None`` entry in ``sys.modules`` is
    Python's documented way to make an import raise ImportError), unless it was imported
    before; Keras then falls back to its stand-in classes."""
    if "sklearn" in sys.modules:
        yield
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]
