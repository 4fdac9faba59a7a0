"""``python -m ssgan.bench serve``: an exported model's ``serving_default`` on JPEG bytes
against the discriminator alone on decoded tensors."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from ssgan.benchmarks.machine import time_calls
from ssgan.config import ModelConfig
from ssgan.serving.images import encode_jpeg


def _percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def bench_serve(model: ModelConfig, precision: str, requests: int) -> dict[str, Any]:
    """Latency and throughput of ``serving_default`` on JPEG bytes vs the bare network
    (at batch 64 both in 5 alternating rounds of 8 calls, best of each)."""
    from ssgan.models.networks import build_discriminator
    from ssgan.preprocess import to_model_range
    from ssgan.serving.saved_model import export_saved_model
    from ssgan.training.distribute import set_precision

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(256, 32, 32, 3), dtype=np.uint8)
    jpegs = [encode_jpeg(image) for image in images]
    set_precision(precision)
    classifier = build_discriminator(model)
    results: dict[str, Any] = {"model": model.name}
    with tempfile.TemporaryDirectory(prefix="ssgan-bench-") as tmp:
        export_saved_model(classifier, Path(tmp) / "model", warmup_images=images)
        serve = tf.saved_model.load(str(Path(tmp) / "model")).signatures["serving_default"]
        one = tf.constant(jpegs[:1])
        for _ in range(20):
            serve(images=one)
        latencies = []
        for _ in range(requests):
            start = time.perf_counter()
            serve(images=one)["scores"].numpy()
            latencies.append(time.perf_counter() - start)
        results["latency_ms_p50"], results["latency_ms_p99"] = _percentiles(latencies)
        for size in (1, 8, 64, 256):
            batch = tf.constant(jpegs[:size])
            serve(images=batch)
            repeats = max(3, 512 // size)
            seconds = time_calls(lambda b=batch: serve(images=b)["scores"].numpy(), repeats)
            results[f"signature_images_per_sec_batch{size}"] = repeats * size / seconds
        # The ratio: signature and network alone at batch 64 in alternating rounds.
        decoded = to_model_range(tf.constant(images[:64]))
        network = tf.function(lambda x: classifier(x, training=False))
        network(decoded)
        batch64 = tf.constant(jpegs[:64])
        best = {"signature": float("inf"), "network": float("inf")}
        for _ in range(5):
            seconds = time_calls(lambda: serve(images=batch64)["scores"].numpy(), 8)
            best["signature"] = min(best["signature"], seconds)
            seconds = time_calls(lambda: network(decoded)[0].numpy(), 8)
            best["network"] = min(best["network"], seconds)
        results["signature_images_per_sec_batch64"] = 8 * 64 / best["signature"]
        results["network_images_per_sec_batch64"] = 8 * 64 / best["network"]
    results["signature_to_network_ratio_batch64"] = (
        results["signature_images_per_sec_batch64"] / results["network_images_per_sec_batch64"]
    )
    return results
