"""The prepared GPU check runs end to end on a CPU at tiny sizes and writes its table."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers.repo import REPO_ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.slow
def test_gpu_check_script_writes_the_markdown_table(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(REPO_ROOT / "experiments" / "gpu_check" / "run.sh"), "--tiny", "--limit", "1",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    assert "GPU: none (CPU only)" in table and "**tiny sizes**" in table
    assert "| tutorial | fp32 | default | 1 | default (batch 16) |" in table
    assert "| tutorial | fp32 | default | 1 | smoke (batch 32) |" in table
    assert table.count("skipped: --limit") == 8  # the other training configurations
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in results["serve"]] == ["tutorial", "improved_gan"]
    assert all(r["signature_to_network_ratio_batch64"] > 0 for r in results["serve"])
    assert result.stdout.strip() == table.strip()  # the same table on stdout
