"""The process's memory allocator: keep glibc malloc from handing big blocks back to the OS.

TensorFlow allocates and frees many large tensors per training step. glibc serves blocks
above its mmap threshold (128 KiB, raised adaptively up to 32 MiB) with ``mmap`` and
returns freed memory at the heap's top once more than 128 KiB is free, so every step maps,
faults in and unmaps the same memory again: on some machines most of a step's CPU time
goes to the kernel. Before TensorFlow is imported, :func:`configure` sets the mmap
threshold to 32 MiB and the trim threshold to 2 GiB through ``mallopt``, so freed blocks
are reused instead. The process keeps its peak heap instead of shrinking after each step.

``SSGAN_MALLOC=system`` keeps glibc's defaults; a malloc replacement preloaded with
``LD_PRELOAD`` (tcmalloc, jemalloc, mimalloc) is left alone; on a C library other than
glibc nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path

ENV = "SSGAN_MALLOC"
CHOICES = ("tuned", "system")
# glibc's mallopt parameters (malloc.h) and the values set.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# mallopt takes a C int: the trim threshold is the largest one, 2 GiB, in effect never.
SETTINGS = {M_MMAP_THRESHOLD: 32 * 1024 * 1024, M_TRIM_THRESHOLD: 2**31 - 1}

_state = "not configured"


def _replacement() -> str | None:
    """A malloc replacement mapped into this process (tcmalloc, jemalloc, mimalloc, e.g.
    through ``LD_PRELOAD``), if any: mallopt would not reach it."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        name = os.path.basename(line.split()[-1]) if "/" in line else ""
        if name.startswith(("libtcmalloc", "libjemalloc", "libmimalloc")):
            return name
    return None


def configure() -> str:
    """Apply the allocator settings once; return what is in use (see :func:`describe`)."""
    global _state
    if _state != "not configured":
        return _state
    choice = os.environ.get(ENV, "tuned")
    if choice not in CHOICES:
        allowed = ", ".join(CHOICES)
        print(f"warning: {ENV}={choice} is not one of {allowed}; using tuned", file=sys.stderr)
        choice = "tuned"
    replacement = _replacement()
    if replacement:
        _state = f"{replacement} (preloaded: unchanged)"
    elif platform.libc_ver()[0] != "glibc":
        _state = "the C library's malloc (not glibc: unchanged)"
    elif choice == "system":
        _state = f"glibc malloc, defaults ({ENV}=system)"
    else:
        # The process's own symbols include the C library's: no library search (which
        # would start ldconfig on every import).
        libc = ctypes.CDLL(None)
        done = [libc.mallopt(param, value) == 1 for param, value in SETTINGS.items()]
        tuned = "glibc malloc, mmap threshold 32 MiB, trim threshold 2 GiB"
        _state = tuned if all(done) else "glibc malloc, defaults (mallopt refused)"
    return _state


def describe() -> str:
    """The allocator in use, as the benchmarks print it."""
    return _state
