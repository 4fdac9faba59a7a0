"""The machine a benchmark runs on: what it is, its float32 matmul peak, and a timer."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import tensorflow as tf


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> float:
    """Float32 FLOP/s of a large matmul: the machine's practical peak for this process."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def describe_machine() -> dict[str, Any]:
    flags = ""
    if Path("/proc/cpuinfo").exists():
        info = Path("/proc/cpuinfo").read_text()
        model = [line for line in info.splitlines() if line.startswith("model name")]
        flags = model[0].split(":", 1)[1].strip() if model else ""
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "cpu": flags or platform.processor(),
        "cores": os.cpu_count(),
        "gpus": gpus,
        "tensorflow": tf.__version__,
    }


def time_calls(call: Any, count: int) -> float:
    """Seconds that ``count`` calls of ``call()`` take, one after another."""
    start = time.perf_counter()
    for _ in range(count):
        call()
    return time.perf_counter() - start
