"""ssgan: semi-supervised GANs on house-number digits (Salimans et al. 2016).

Importing the package imports TensorFlow once, quietly: TensorFlow's C++ start-up lines
(oneDNN and CUDA notices, also at device discovery) are written to file descriptor 2
before any logging setting applies, so they are captured here and only shown if the
import fails. Set
``SSGAN_TF_VERBOSE=1`` (and ``TF_CPP_MIN_LOG_LEVEL=0``) to see everything.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

__version__ = "0.1.0"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Before TensorFlow allocates anything: freed tensors are reused, not unmapped (see
# ssgan/allocator.py; SSGAN_MALLOC=system keeps glibc's defaults).
from ssgan.allocator import configure as _configure_allocator

_configure_allocator()


def _import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules or os.environ.get("SSGAN_TF_VERBOSE") == "1":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
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


_import_tensorflow_quietly()
# TensorFlow's Python side logs through absl at INFO (e.g. checkpoint sharding timings),
# which Hydra's job logging would print on every save.
for _name in ("absl", "tensorflow"):
    logging.getLogger(_name).setLevel(logging.WARNING)
