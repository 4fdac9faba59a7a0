"""``python -m ssgan.bench train``: the full training loop against a bare step of the same
maths on tensors in memory, both against the machine's matmul peak, side by side."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ssgan.benchmarks.machine import cpu_seconds, kernel_share, matmul_peak_flops
from ssgan.cli import compose_config
from ssgan.config import TrainAppConfig, typed
from ssgan.method_config import unlabelled_ratio
from ssgan.training.loop_options import LoopOptions

# Small data so the benchmark does not wait on generating 50k synthetic digits; the
# model and the batch stay at their defaults.
BENCH_DATA = [
    "data.train_size=6000",
    "data.test_size=500",
    "data.val_size=500",
    "train.sample_grid=false",
]


class _DiscardingTracker:
    """Stands in for the MLflow tracker to time the loop with logging switched off."""

    run_id = "bench"

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        del metrics, step

    def log_image(self, image: np.ndarray, artifact_file: str) -> None:
        del image, artifact_file

    def flush(self) -> None:
        pass

    def log_checkpoint(self, step: int) -> None:
        del step


class _Loop:
    """The framework's own loop, opened once and kept running: each :meth:`time` call
    continues it for more steps, so nothing restarts inside the timing."""

    def __init__(
        self, options: LoopOptions, data: Any, gan: Any, tracker: Any, workdir: Path, warmup: int
    ) -> None:
        from ssgan.training.trainer import Trainer

        strategy = gan.strategy
        self.trainer = Trainer(options, data, gan, tracker, workdir, strategy)
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


def bench_train(cfg: TrainAppConfig, steps: int, warmup: int, rounds: int = 3) -> dict[str, Any]:
    """Images/s of the full loop and of the bare step at one width, side by side.

    (a) bare step: the compiled single step called back to back on one batch already in
    memory; (b) the framework's loop in steady state (input pipeline, multi-step calls,
    finiteness checks, async MLflow logging every ``train.log_every`` steps to a real
    SQLite store, checkpoints every ``train.checkpoint_every``); (c) the same loop with
    logging discarded. They are timed in alternating rounds and each keeps its best.
    """
    from ssgan.data import load_data
    from ssgan.data.pipeline import train_batches
    from ssgan.methods import build_method
    from ssgan.tracking.store import TrackingStore
    from ssgan.tracking.tracker import RunTracker
    from ssgan.training.distribute import make_strategy

    keras.utils.set_random_seed(0)
    data = load_data(cfg.data, cfg.model.num_classes)
    batch = cfg.data.batch_size
    strategy = make_strategy(cfg.train)

    # One GAN for the three (one trace of each compiled function): each loop keeps its
    # own step counter and input stream; what the weights learn does not matter here.
    bare_gan = build_method(cfg.model, cfg.train, cfg.method, steps, strategy)
    unlabelled = batch * unlabelled_ratio(cfg.method)
    in_memory = next(iter(train_batches(data, batch, 0, 0, unlabelled)))
    if strategy.num_replicas_in_sync > 1:
        in_memory = next(iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(in_memory))))  # fmt: skip
    first = train_batches(data, batch, 0, 0, unlabelled).take(1).get_single_element()
    bare_gan.initialize(first[2])
    for _ in range(warmup):
        bare_gan.train_step(in_memory)["d_loss"].numpy()

    def bare_seconds_per_step() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            outputs = bare_gan.train_step(in_memory)
        outputs["d_loss"].numpy()  # waits for the last step
        return (time.perf_counter() - start) / steps

    # No epoch end (evaluation) inside the timing.
    loop_train = replace(cfg.train, steps_per_epoch=10**9, sample_grid=False)
    options = LoopOptions.from_config(loop_train, cfg.data, cfg.method)
    seconds: dict[str, list[float]] = {"bare": [], "logged": [], "quiet": []}
    # CPU time (user, system) spent inside each kind of timed round, summed over rounds.
    cpu = {kind: [0.0, 0.0] for kind in seconds}

    def timed(kind: str, run: Any) -> None:
        before = cpu_seconds()
        seconds[kind].append(run())
        after = cpu_seconds()
        cpu[kind][0] += after[0] - before[0]
        cpu[kind][1] += after[1] - before[1]

    with tempfile.TemporaryDirectory(prefix="ssgan-bench-") as tmp:
        tracking = replace(
            cfg.tracking, uri=f"sqlite:///{tmp}/mlflow.db", artifact_root=f"{tmp}/artifacts"
        )
        tracker = RunTracker.start(TrackingStore(tracking), {}, {}, "bench")
        logged = _Loop(options, data, bare_gan, tracker, Path(tmp) / "logged", warmup)
        quiet = _Loop(options, data, bare_gan, _DiscardingTracker(), Path(tmp) / "quiet", warmup)
        for _ in range(rounds):
            timed("bare", bare_seconds_per_step)
            timed("logged", lambda: logged.time(steps))
            timed("quiet", lambda: quiet.time(steps))
        tracker.finish("FINISHED")
    bare_seconds, loop_step, quiet_step = (min(seconds[k]) for k in ("bare", "logged", "quiet"))

    pipeline_rate = pipeline_batches_per_sec(data, batch)
    flops = bare_gan.step_flops(batch)
    bare_rate = batch / bare_seconds
    loop_rate = batch / loop_step
    return {
        "model": cfg.model.name,
        "method": cfg.method.name,
        "batch_size": batch,
        "precision": cfg.train.precision,
        "strategy": cfg.train.strategy,
        "steps_per_loop": cfg.train.steps_per_loop,
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
        "bare_step_kernel_share": kernel_share(*cpu["bare"]),
        "full_loop_kernel_share": kernel_share(*cpu["logged"]),
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
    from ssgan.config_checks import validate_train_config

    results: dict[str, Any] = {}
    for width in widths:
        extra = SMOKE_WIDTHS if width == "smoke" else []
        cfg = compose_config("config", [*BENCH_DATA, *overrides, *extra])
        validate_train_config(cfg)
        factor = SMOKE_STEP_FACTOR if width == "smoke" else 1
        settings = typed(cfg, TrainAppConfig)
        results[width] = bench_train(settings, steps * factor, warmup * factor, rounds)
    peak = matmul_peak_flops()
    results["matmul_peak_flops_per_sec"] = peak
    for width in widths:
        results[width]["step_share_of_peak"] = results[width]["bare_step_flops_per_sec"] / peak
    return results
