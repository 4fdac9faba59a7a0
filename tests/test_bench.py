"""The benchmarks run end to end and print their figures (tiny sizes; no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssgan.bench import main as bench_main

TINY = [
    *("model.d_size_mult=4", "model.g_size_mult=4", "model.z_size=8", "data.batch_size=16"),
    *("data.train_size=400", "data.val_size=50", "data.test_size=50", "data.num_labeled=20"),
]


def _run(capsys, tmp_path: Path, *args: str) -> dict:
    bench_main([*args, *TINY, f"data.root={tmp_path}", "--json"])
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


def test_train_benchmark_prints_ratios_and_flops(capsys, tmp_path: Path) -> None:
    figures = _run(capsys, tmp_path, "train", "--steps", "3", "--warmup", "1", "--rounds", "1")
    for key in ("full_loop_images_per_sec", "bare_step_images_per_sec", "loop_to_bare_ratio",
                "logging_overhead", "flops_per_training_image", "matmul_peak_flops_per_sec",
                "step_share_of_peak", "input_pipeline_batches_per_sec"):  # fmt: skip
        assert figures[key] > 0 or key == "logging_overhead", key
    assert figures["machine"]["cores"] >= 1


def test_serve_benchmark_prints_latency_and_throughput(capsys, tmp_path: Path) -> None:
    figures = _run(capsys, tmp_path, "serve", "--requests", "5")
    assert figures["latency_ms_p99"] >= figures["latency_ms_p50"] > 0
    for size in (1, 8, 64, 256):
        assert figures[f"signature_images_per_sec_batch{size}"] > 0
    assert figures["signature_to_network_ratio_batch64"] == pytest.approx(
        figures["signature_images_per_sec_batch64"] / figures["network_images_per_sec_batch64"]
    )
