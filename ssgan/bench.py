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
from ssgan.errors import UserError

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


class _Loop:
    """The framework's own loop, opened once and kept running: each :meth:`time` call
    continues it for more steps, so nothing restarts inside the timing."""

    def __init__(
        self, cfg: DictConfig, data: Any, gan: Any, tracker: Any, workdir: Path, warmup: int
    ) -> None:
        from ssgan.training.trainer import Trainer

        strategy = gan.strategy
        self.trainer = Trainer(cfg, data, gan, tracker, workdir, strategy)
        self.trainer.progress = False
        self.trainer.start()
        self.trainer.run_until(warmup)  # tracing, pipeline start-up

    def time(self, steps: int) -> float:
        """Seconds per step of ``steps`` more steps (per-epoch evaluation excluded)."""
        target = int(self.trainer.state.step.numpy()) + steps
        eval_before = self.trainer.eval_seconds
        start = time.perf_counter()
        self.trainer.run_until(target)
        seconds = time.perf_counter() - start - (self.trainer.eval_seconds - eval_before)
        return seconds / steps


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
    """Images/s of the full loop and of the bare step at one width, side by side.

    (a) bare step: the compiled single step called back to back on one batch already in
    memory; (b) the framework's loop in steady state (input pipeline, multi-step calls,
    finiteness checks, async MLflow logging every ``train.log_every`` steps to a real
    SQLite store, checkpoints every ``train.checkpoint_every``); (c) the same loop with
    logging discarded. They are timed in alternating rounds and each keeps its best.
    """
    from ssgan.data import load_data
    from ssgan.data.pipeline import train_batches
    from ssgan.models.gan import SemiSupervisedGAN
    from ssgan.tracking.tracker import RunTracker
    from ssgan.training.distribute import make_strategy

    keras.utils.set_random_seed(0)
    data = load_data(cfg.data, int(cfg.model.num_classes))
    batch = int(cfg.data.batch_size)
    strategy = make_strategy(cfg.train)

    # One GAN for the three (one trace of each compiled function): each loop keeps its
    # own step counter and input stream; what the weights learn does not matter here.
    bare_gan = SemiSupervisedGAN(cfg.model, cfg.train, strategy)
    in_memory = next(iter(train_batches(data, batch, 0)))
    if strategy.num_replicas_in_sync > 1:
        in_memory = next(iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(in_memory))))  # fmt: skip
    bare_gan.initialize(train_batches(data, batch, 0).take(1).get_single_element()[2])
    for _ in range(warmup):
        bare_gan.train_step(in_memory)["d_loss"].numpy()

    def bare_seconds_per_step() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            outputs = bare_gan.train_step(in_memory)
        outputs["d_loss"].numpy()  # waits for the last step
        return (time.perf_counter() - start) / steps

    cfg.train.steps_per_epoch = 10**9  # no epoch end (evaluation) inside the timing
    cfg.train.sample_grid = False
    seconds: dict[str, list[float]] = {"bare": [], "logged": [], "quiet": []}
    with tempfile.TemporaryDirectory(prefix="ssgan-bench-") as tmp:
        cfg.tracking.uri = f"sqlite:///{tmp}/mlflow.db"
        cfg.tracking.artifact_root = f"{tmp}/artifacts"
        tracker = RunTracker.start(cfg, {}, {}, "bench")
        logged = _Loop(cfg, data, bare_gan, tracker, Path(tmp) / "logged", warmup)
        quiet = _Loop(cfg, data, bare_gan, _DiscardingTracker(), Path(tmp) / "quiet", warmup)
        for _ in range(rounds):
            seconds["bare"].append(bare_seconds_per_step())
            seconds["logged"].append(logged.time(steps))
            seconds["quiet"].append(quiet.time(steps))
        tracker.finish("FINISHED")
    bare_seconds, loop_step, quiet_step = (min(seconds[k]) for k in ("bare", "logged", "quiet"))

    pipeline_rate = pipeline_batches_per_sec(data, batch)
    flops = step_flops(bare_gan, batch, str(cfg.train.mode))
    bare_rate = batch / bare_seconds
    loop_rate = batch / loop_step
    return {
        "model": str(cfg.model.name),
        "mode": str(cfg.train.mode),
        "batch_size": batch,
        "precision": str(cfg.train.precision),
        "strategy": str(cfg.train.strategy),
        "steps_per_loop": int(cfg.train.steps_per_loop),
        "timed_steps_per_round": steps,
        "full_loop_images_per_sec": loop_rate,
        "bare_step_images_per_sec": bare_rate,
        "loop_to_bare_ratio": loop_rate / bare_rate,
        "host_cost_per_step_us": (loop_step - bare_seconds) * 1e6,
        "logging_overhead": loop_step / quiet_step - 1.0,
        "input_pipeline_batches_per_sec": pipeline_rate,
        "input_pipeline_to_step_ratio": pipeline_rate * bare_seconds,
        "flops_per_step": flops,
        "flops_per_training_image": flops / batch,
        "bare_step_flops_per_sec": flops / bare_seconds,
    }


# The widths of the smoke preset: a step ~6x shorter than the default model's, which
# stands in for a fast accelerator where the host's cost per step shows.
SMOKE_WIDTHS = ["model.d_size_mult=8", "model.g_size_mult=8", "model.z_size=16",
                "data.batch_size=32"]  # fmt: skip
SMOKE_STEP_FACTOR = 5  # timed steps per round at smoke widths, relative to --steps


def bench_train_widths(
    overrides: list[str], widths: list[str], steps: int, warmup: int, rounds: int
) -> dict[str, Any]:
    """:func:`bench_train` at each of ``widths`` (``default``, ``smoke``) in this process,
    and the float32 matmul peak the default width's step is related to."""
    from ssgan.config import validate_train_config

    results: dict[str, Any] = {}
    for width in widths:
        extra = SMOKE_WIDTHS if width == "smoke" else []
        cfg = compose_config("config", [*BENCH_DATA, *overrides, *extra])
        validate_train_config(cfg)
        factor = SMOKE_STEP_FACTOR if width == "smoke" else 1
        results[width] = bench_train(cfg, steps * factor, warmup * factor, rounds)
    peak = matmul_peak_flops()
    results["matmul_peak_flops_per_sec"] = peak
    for width in widths:
        results[width]["step_share_of_peak"] = results[width]["bare_step_flops_per_sec"] / peak
    return results


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def bench_serve(cfg: DictConfig, requests: int) -> dict[str, Any]:
    """Latency and throughput of ``serving_default`` on JPEG bytes vs the bare network
    (at batch 64 both in 5 alternating rounds of 8 calls, best of each)."""
    from ssgan.models.networks import build_discriminator
    from ssgan.preprocess import to_model_range
    from ssgan.serving.saved_model import export_saved_model
    from ssgan.training.distribute import set_precision

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(256, 32, 32, 3), dtype=np.uint8)
    jpegs = [_jpeg(image) for image in images]
    set_precision(str(cfg.train.precision))
    classifier = build_discriminator(cfg.model)
    results: dict[str, Any] = {"model": str(cfg.model.name)}
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
            seconds = _time_steps(lambda b=batch: serve(images=b)["scores"].numpy(), repeats)
            results[f"signature_images_per_sec_batch{size}"] = repeats * size / seconds
        # The ratio: signature and network alone at batch 64 in alternating rounds.
        decoded = to_model_range(tf.constant(images[:64]))
        network = tf.function(lambda x: classifier(x, training=False))
        network(decoded)
        batch64 = tf.constant(jpegs[:64])
        best = {"signature": float("inf"), "network": float("inf")}
        for _ in range(5):
            seconds = _time_steps(lambda: serve(images=batch64)["scores"].numpy(), 8)
            best["signature"] = min(best["signature"], seconds)
            seconds = _time_steps(lambda: network(decoded)[0].numpy(), 8)
            best["network"] = min(best["network"], seconds)
        results["signature_images_per_sec_batch64"] = 8 * 64 / best["signature"]
        results["network_images_per_sec_batch64"] = 8 * 64 / best["network"]
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
    columns = [key for key, value in results.items() if isinstance(value, dict)]
    for key, value in results.items():
        if not isinstance(value, dict):
            print(f"{key:40s} {_shown(value)}")
    if columns:
        # Each column as wide as its widest figure, with two spaces between columns.
        cells = {c: {k: _shown(v) for k, v in results[c].items()} for c in columns}
        wide = {c: 2 + max(len(c), *map(len, cells[c].values())) for c in columns}
        print(f"\n{'widths':40s}" + "".join(f"{c:>{wide[c]}s}" for c in columns))
        for key in results[columns[0]]:
            row = (f"{cells[c].get(key, 'None'):>{wide[c]}s}" for c in columns)
            print(f"{key:40s}" + "".join(row))


def _shown(value: Any) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ssgan.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("what", choices=["train", "serve"])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.precision=bf16")
    parser.add_argument("--steps", type=int, default=40,
                        help=f"timed steps per round at default widths (train; smoke widths: "
                             f"{SMOKE_STEP_FACTOR}x)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (train)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (train)")
    parser.add_argument("--widths", default="default,smoke",
                        help="comma-separated: default (the config's), smoke (train)")  # fmt: skip
    parser.add_argument("--requests", type=int, default=200, help="single-image requests (serve)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_intermixed_args(argv)
    with user_errors():
        widths = [w for w in args.widths.split(",") if w]
        if not widths or set(widths) - {"default", "smoke"}:
            raise UserError(f"--widths={args.widths}: allowed a comma-separated list of "
                            f"default, smoke")  # fmt: skip
        if args.what == "train":
            results = bench_train_widths(
                args.overrides, widths, args.steps, args.warmup, args.rounds
            )
        else:
            from ssgan.config import validate_train_config

            cfg = compose_config("config", [*BENCH_DATA, *args.overrides])
            validate_train_config(cfg)
            results = bench_serve(cfg, args.requests)
    _print({"machine": _machine(), **results} if args.json else {**_machine(), **results},
           args.json)  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
