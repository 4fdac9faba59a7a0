"""The machine this process runs on: its CPU model and widest vector extension.

Timings mean nothing without the machine that made them, and machines of one model name
differ in their vector extension (the same "AMD EPYC" with and without AVX-512), so both
are named together. Read from ``/proc/cpuinfo`` (Linux); elsewhere the platform's name.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import NamedTuple

_VECTOR_EXTENSIONS = ("avx512f", "avx2", "avx")  # widest first


class Cpu(NamedTuple):
    model: str  # e.g. "AMD EPYC 9B14"
    vector_extension: str  # "avx512", "avx2", "avx" or "" (none found, or not x86)

    def describe(self) -> str:
        """``"AMD EPYC 9B14 with AVX512"``: the model, and its vector extension if any."""
        return self.model + (
            f" with {self.vector_extension.upper()}" if self.vector_extension else ""
        )


def cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> Cpu:
    """The CPU of this machine (the first processor listed)."""
    model, flags = "", set[str]()
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    for line in text.splitlines():
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    vector = next((name for name in _VECTOR_EXTENSIONS if name in flags), "")
    return Cpu(model or platform.processor() or "unknown CPU", vector.removesuffix("f"))
