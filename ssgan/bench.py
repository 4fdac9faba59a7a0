"""Benchmarks that print figures: ``python -m ssgan.bench train`` and ``... serve``.

``train`` times, in one process, (a) the framework's full loop (input pipeline, step,
metric logging to a real MLflow store, checkpoints) and (b) a bare step of the same
maths on tensors already in memory, and relates both to the machine's own float32
matmul peak. ``serve`` times an exported model's ``serving_default`` signature on JPEG
bytes against the discriminator alone on decoded tensors. Ratios are measured side by
side in the same run, because these machines are noisy.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from omegaconf import DictConfig
from PIL import Image

from ssgan.cli import compose_config, user_errors

# Small data so the benchmark does not wait on generating 50k synthetic digits; the
# model and the batch stay at their defaults.
BENCH_DATA = [
    "data.train_size=6000",
    "data.test_size=500",
    "data.val_size=500",
    "train.sample_grid=false",
]


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


def layer_forward_flops(model: keras.Model) -> float:
    """Forward FLOPs per image of a network's conv, transposed-conv and dense layers
    (2 FLOPs per multiply-add; other layers are negligible next to these)."""
    total = 0.0
    for layer in _leaf_layers(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        kernel_size = int(np.prod(kernel.shape))
        out_shape = layer.output.shape if hasattr(layer, "output") else None
        if isinstance(layer, keras.layers.Conv2DTranspose):
            in_shape = layer.input.shape
            total += 2.0 * in_shape[1] * in_shape[2] * kernel_size
        elif len(kernel.shape) == 4 and out_shape is not None:
            total += 2.0 * out_shape[1] * out_shape[2] * kernel_size
        else:
            total += 2.0 * kernel_size
    return total


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    leaves = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer))
        else:
            leaves.append(layer)
    return leaves


def step_flops(gan: Any, batch_size: int, mode: str) -> float:
    """FLOPs of one training step, counted from the networks' forward cost.

    Backpropagation costs about twice the forward pass (input and weight gradients).
    SSGAN step (Salimans et al. 2016): D update = G forward on B noise vectors, D forward
    + backward on 3B images (labelled, unlabelled, generated); G update = G forward +
    backward on B, D forward + input-gradient on B generated images, D forward on B real
    images for the feature statistics. Supervised: D forward + backward on B.
    """
    d = layer_forward_flops(gan.discriminator)
    if mode == "supervised":
        return 3.0 * d * batch_size
    g = layer_forward_flops(gan.generator)
    d_update = g + 3.0 * 3.0 * d
    g_update = 3.0 * g + 2.0 * d + d
    return (d_update + g_update) * batch_size


class _DiscardingTracker:
    """Stands in for the MLflow tracker to time the loop with logging switched off."""

    run_id = "bench"

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        del metrics, step

    def log_image(self, image: np.ndarray, artifact_file: str) -> None:
        del image, artifact_file

    def flush(self) -> None:
        pass


class _LoopTimer:
    """The framework's loop on its own GAN; each ``time_epoch`` runs and times one more
    epoch of ``train.steps_per_epoch`` steps (per-epoch evaluation excluded)."""

    def __init__(self, cfg: DictConfig, data: Any, tracker: Any, workdir: Path, strategy: Any):
        from ssgan.gan import SemiSupervisedGAN
        from ssgan.trainer import Trainer

        self.cfg = copy.deepcopy(cfg)  # each timer counts its own epochs
        self.cfg.train.epochs = 1
        self.cfg.train.sample_grid = False
        gan = SemiSupervisedGAN(self.cfg.model, self.cfg.train, strategy)
        self.trainer = Trainer(self.cfg, data, gan, tracker, workdir, strategy)
        self.trainer.fit()  # warm-up: tracing, pipeline start-up

    def time_epoch(self) -> float:
        """Seconds per step of one more epoch."""
        self.cfg.train.epochs += 1
        eval_before = self.trainer.eval_seconds
        start = time.perf_counter()
        self.trainer.fit()
        seconds = time.perf_counter() - start - (self.trainer.eval_seconds - eval_before)
        return seconds / int(self.cfg.train.steps_per_epoch)


def pipeline_batches_per_sec(data: Any, batch_size: int, batches: int = 200) -> float:
    """How fast the input pipeline alone delivers training batches (after start-up)."""
    from ssgan.data.pipeline import train_batches

    stream = iter(train_batches(data, batch_size, 0))
    for _ in range(10):
        next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches / (time.perf_counter() - start)


def _time_steps(run_step: Any, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        run_step()
    return time.perf_counter() - start


def bench_train(cfg: DictConfig, steps: int, warmup: int, rounds: int = 3) -> dict[str, Any]:
    """Images/s of the full loop and of the bare step, and both against the matmul peak."""
    from ssgan.data import load_data
    from ssgan.data.pipeline import train_batches
    from ssgan.distribute import make_strategy
    from ssgan.gan import SemiSupervisedGAN
    from ssgan.tracking import RunTracker

    keras.utils.set_random_seed(0)
    data = load_data(cfg.data, int(cfg.model.num_classes))
    batch = int(cfg.data.batch_size)
    strategy = make_strategy(cfg.train)

    # (b) bare step: one batch already in memory, the compiled step called in a loop.
    bare_gan = SemiSupervisedGAN(cfg.model, cfg.train, strategy)
    in_memory = next(iter(train_batches(data, batch, 0)))
    bare_gan.initialize(in_memory[2])
    for _ in range(warmup):
        bare_gan.train_step(in_memory)["d_loss"].numpy()

    def bare_step() -> float:
        run = lambda: bare_gan.train_step(in_memory)["d_loss"].numpy()  # noqa: E731
        return _time_steps(run, steps) / steps

    # (a) the framework's loop: pipeline, step, finiteness checks, progress, async MLflow
    # logging every train.log_every steps and a checkpoint per epoch, on a throwaway
    # SQLite store; and the same loop with logging discarded, to show what logging costs.
    # The three are timed in alternating rounds and the best round of each is kept.
    cfg.train.steps_per_epoch = steps
    cfg.train.log_every = min(int(cfg.train.log_every), steps)
    seconds: dict[str, list[float]] = {"bare": [], "logged": [], "quiet": []}
    with tempfile.TemporaryDirectory(prefix="ssgan-bench-") as tmp:
        cfg.tracking.uri = f"sqlite:///{tmp}/mlflow.db"
        cfg.tracking.artifact_root = f"{tmp}/artifacts"
        tracker = RunTracker.start(cfg, {}, {}, "bench")
        logged = _LoopTimer(cfg, data, tracker, Path(tmp) / "logged", strategy)
        quiet = _LoopTimer(cfg, data, _DiscardingTracker(), Path(tmp) / "quiet", strategy)
        for _ in range(rounds):
            seconds["bare"].append(bare_step())
            seconds["logged"].append(logged.time_epoch())
            seconds["quiet"].append(quiet.time_epoch())
        tracker.finish("FINISHED")
    bare_seconds, loop_step, quiet_step = (min(seconds[k]) for k in ("bare", "logged", "quiet"))

    pipeline_rate = pipeline_batches_per_sec(data, batch)
    peak = matmul_peak_flops()
    flops = step_flops(bare_gan, batch, str(cfg.train.mode))
    bare_rate = batch / bare_seconds
    loop_rate = batch / loop_step
    return {
        "model": str(cfg.model.name),
        "mode": str(cfg.train.mode),
        "batch_size": batch,
        "precision": str(cfg.train.precision),
        "full_loop_images_per_sec": loop_rate,
        "bare_step_images_per_sec": bare_rate,
        "loop_to_bare_ratio": loop_rate / bare_rate,
        "input_pipeline_batches_per_sec": pipeline_rate,
        "input_pipeline_to_step_ratio": pipeline_rate * bare_seconds,
        "logging_overhead": loop_step / quiet_step - 1.0,
        "flops_per_step": flops,
        "flops_per_training_image": flops / batch,
        "bare_step_flops_per_sec": flops / bare_seconds,
        "matmul_peak_flops_per_sec": peak,
        "step_share_of_peak": flops / bare_seconds / peak,
    }


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def bench_serve(cfg: DictConfig, requests: int) -> dict[str, Any]:
    """Latency and throughput of ``serving_default`` on JPEG bytes vs the bare network."""
    from ssgan.export import export_saved_model
    from ssgan.model import build_discriminator
    from ssgan.preprocess import to_model_range

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(256, 32, 32, 3), dtype=np.uint8)
    jpegs = [_jpeg(image) for image in images]
    classifier = build_discriminator(cfg.model)
    results: dict[str, Any] = {"model": str(cfg.model.name)}
    with tempfile.TemporaryDirectory(prefix="ssgan-bench-") as tmp:
        export_saved_model(classifier, Path(tmp) / "model")
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
            seconds = _time_steps(lambda b=batch: serve(images=b)["scores"].numpy(), repeats)
            results[f"signature_images_per_sec_batch{size}"] = repeats * size / seconds
        decoded = to_model_range(tf.constant(images[:64]))
        network = tf.function(lambda x: classifier(x, training=False))
        network(decoded)
        seconds = _time_steps(lambda: network(decoded)[0].numpy(), 16)
        results["network_images_per_sec_batch64"] = 16 * 64 / seconds
    results["signature_to_network_ratio_batch64"] = (
        results["signature_images_per_sec_batch64"] / results["network_images_per_sec_batch64"]
    )
    return results


def _machine() -> dict[str, Any]:
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


def _print(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"{key:40s} {shown}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ssgan.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("what", choices=["train", "serve"])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.precision=bf16")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per round (train)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (train)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (train)")
    parser.add_argument("--requests", type=int, default=200, help="single-image requests (serve)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_intermixed_args(argv)
    with user_errors():
        cfg = compose_config("config", [*BENCH_DATA, *args.overrides])
        from ssgan.config import validate_train_config

        validate_train_config(cfg)
        if args.what == "train":
            results = bench_train(cfg, args.steps, args.warmup, args.rounds)
        else:
            results = bench_serve(cfg, args.requests)
    _print(
        {"machine": _machine(), **results} if args.json else {**_machine(), **results}, args.json
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
