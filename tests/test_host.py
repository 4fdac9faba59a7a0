"""The machine a run's timings come from: CPU model and vector extension from cpuinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssgan import host

pytestmark = pytest.mark.unit


def _cpuinfo(tmp_path: Path, model: str, flags: str) -> Path:
    # Two processors, as /proc/cpuinfo lists them: the first one is read.
    block = f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
    path = tmp_path / "cpuinfo"
    path.write_text(block + block.replace(": 0", ": 1"))
    return path


@pytest.mark.parametrize(
    ("model", "flags", "vector", "described"),
    [
        (
            "AMD EPYC 9B14",
            "fpu sse2 avx avx2 avx512f avx512bw",
            "avx512",
            "AMD EPYC 9B14 with AVX512",
        ),
        (
            "Intel(R) Xeon(R) Processor",
            "fpu sse2 avx avx2 fma",
            "avx2",
            "Intel(R) Xeon(R) Processor with AVX2",
        ),
        ("Old CPU", "fpu sse2", "", "Old CPU"),
    ],
)
def test_cpu_names_the_model_and_its_widest_vector_extension(
    tmp_path: Path, model: str, flags: str, vector: str, described: str
) -> None:
    cpu = host.cpu(_cpuinfo(tmp_path, model, flags))
    assert cpu == host.Cpu(model, vector)
    assert cpu.describe() == described


def test_cpu_without_cpuinfo_still_names_something(tmp_path: Path) -> None:
    cpu = host.cpu(tmp_path / "absent")
    assert cpu.model and cpu.vector_extension == ""
