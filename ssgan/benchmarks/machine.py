"""The machine a benchmark runs on: what it is, its float32 matmul peak, and a timer."""

from __future__ import annotations

import os
import resource
import time
from typing import Any

import tensorflow as tf

from ssgan import allocator, host


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
    """CPU model and widest vector extension (machines of one model name differ in it),
    cores, GPUs, TensorFlow, and the memory allocator (:mod:`ssgan.allocator`)."""
    machine = host.cpu()
    return {
        "cpu": machine.model,
        "vector_extension": machine.vector_extension,
        "cores": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "tensorflow": tf.__version__,
        "allocator": allocator.describe(),
    }


def time_calls(call: Any, count: int) -> float:
    """Seconds that ``count`` calls of ``call()`` take, one after another."""
    start = time.perf_counter()
    for _ in range(count):
        call()
    return time.perf_counter() - start


def cpu_seconds() -> tuple[float, float]:
    """This process's CPU time so far, all threads: (user, system) seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def kernel_share(user: float, system: float) -> float:
    """The kernel's share of CPU time: ``system / (user + system)``."""
    return system / (user + system) if user + system > 0 else 0.0
