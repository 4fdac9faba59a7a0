"""The memory allocator setting (ssgan/allocator.py): applied (mallopt accepted it) when
the package is imported, off with SSGAN_MALLOC=system, a bad value is one warning line.
Each case runs in a fresh process, since malloc is set up once per process. What the
setting does to a training step is measured by ``python -m ssgan.bench train`` (the
kernel's share of CPU time) and experiments/allocator/compare.py, not timed here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.repo import REPO_ROOT

pytestmark = pytest.mark.e2e

PROBE = "import sys\nimport ssgan\nfrom ssgan import allocator\nprint(allocator.describe())\n"


def _describe(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("SSGAN_MALLOC", "LD_PRELOAD")}
    return subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
        cwd=REPO_ROOT, env={**environment, **env},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "glibc malloc, mmap threshold 32 MiB, trim threshold 2 GiB"),
        ({"SSGAN_MALLOC": "tuned"}, "glibc malloc, mmap threshold 32 MiB, trim threshold 2 GiB"),
        ({"SSGAN_MALLOC": "system"}, "glibc malloc, defaults (SSGAN_MALLOC=system)"),
    ],
)
def test_allocator_is_set_on_import_unless_turned_off(env: dict, expected: str) -> None:
    probed = _describe(**env)
    assert probed.returncode == 0, probed.stderr
    assert probed.stdout.strip() == expected
    assert probed.stderr == ""


def test_a_bad_setting_is_one_warning_line_and_the_default() -> None:
    probed = _describe(SSGAN_MALLOC="fast")
    assert probed.returncode == 0, probed.stderr
    assert probed.stderr == "warning: SSGAN_MALLOC=fast is not one of tuned, system; using tuned\n"
    assert probed.stdout.strip().startswith("glibc malloc, mmap threshold 32 MiB")
