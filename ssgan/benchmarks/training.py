"""``python -m ssgan.bench train``: the full training loop against a bare step of the same
maths on tensors in memory, both against the machine's matmul peak, side by side, for the
config's method or for several methods (``bench.methods``) in alternating rounds."""

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


def pipeline_batches_per_sec(
    data: Any, batch_size: int, unlabelled_batch_size: int | None = None, batches: int = 200
) -> float:
    """How fast the input pipeline alone delivers training batches (after start-up):
    ``batch_size`` labelled and ``unlabelled_batch_size`` unlabelled images each."""
    from ssgan.data.pipeline import train_batches

    stream = iter(train_batches(data, batch_size, 0, 0, unlabelled_batch_size))
    for _ in range(10):
        next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches / (time.perf_counter() - start)


def _in_calls(run: Any, steps: int, per_call: int) -> float:
    """Seconds per step of ``steps`` steps run as calls of ``run(count)`` of at most
    ``per_call`` steps each; ``run`` returns a tensor whose value waits for its call."""
    start = time.perf_counter()
    done, last = 0, None
    while done < steps:
        count = min(per_call, steps - done)
        last = run(count)
        done += count
    np.asarray(last)  # waits for the last call (and so for the ones before it)
    return (time.perf_counter() - start) / steps


class _MethodBench:
    """One method's three timings (and its augmentation's), each round timed in turn.

    (a) bare step: :meth:`ClassifierMethod.train_steps` (the loop's own compiled call,
    ``train.steps_per_loop`` steps a call) reading one batch held in memory, repeated by
    ``tf.data`` (no generation, no conversion; the same host-to-device copy as the loop):
    so loop against bare is the input pipeline, the host's work between calls and the
    logging, not the cost of a call that the loop amortises over several steps;
    (b) the framework's loop in steady state (input pipeline, multi-step calls, finiteness
    checks, async MLflow logging every ``train.log_every`` steps to a real SQLite store,
    checkpoints every ``train.checkpoint_every``); (c) the same loop with logging
    discarded; (d) for a method that augments (:attr:`ClassifierMethod.augments`), its
    :meth:`~ClassifierMethod.augmented` alone on the same batch, compiled as in the step
    (per replica, ``train.jit_compile``) and called as (a) is. Each keeps its best round.
    """

    def __init__(self, cfg: TrainAppConfig, data: Any, strategy: Any, steps: int,
                 warmup: int, workdir: Path) -> None:  # fmt: skip
        from ssgan.data.pipeline import train_batches
        from ssgan.methods import build_method
        from ssgan.tracking.store import TrackingStore
        from ssgan.tracking.tracker import RunTracker

        keras.utils.set_random_seed(0)
        self.cfg, self.data, self.steps = cfg, data, steps
        batch = cfg.data.batch_size
        self.unlabelled = batch * unlabelled_ratio(cfg.method)
        self.per_call = cfg.train.steps_per_loop
        # One method for the three (one trace of each compiled function): each loop keeps
        # its own step counter and input stream; what the weights learn does not matter.
        gan = build_method(cfg.model, cfg.train, cfg.method, steps, strategy)
        self.gan = gan
        local = train_batches(data, batch, 0, 0, self.unlabelled).take(1).get_single_element()
        gan.initialize(local[2])
        in_memory = tf.data.Dataset.from_tensors(local).repeat()
        one = tf.data.Dataset.from_tensors(local)
        if strategy.num_replicas_in_sync > 1:
            in_memory = strategy.experimental_distribute_dataset(in_memory)
            one = strategy.experimental_distribute_dataset(one)
        memory_batches, self.bare_step = iter(in_memory), tf.Variable(0, dtype=tf.int64)
        self._bare = lambda count: gan.train_steps(memory_batches, count, self.bare_step)[1]
        self._augment = _augmentation(gan, strategy, next(iter(one)))
        for run in (self._bare, *([self._augment] if gan.augments else [])):
            _in_calls(run, warmup, self.per_call)
        # No epoch end (evaluation) inside the timing.
        loop_train = replace(cfg.train, steps_per_epoch=10**9, sample_grid=False)
        options = LoopOptions.from_config(loop_train, cfg.data, cfg.method)
        name = cfg.method.name
        tracking = replace(cfg.tracking, uri=f"sqlite:///{workdir}/mlflow.db",
                           artifact_root=f"{workdir}/artifacts")  # fmt: skip
        self.tracker = RunTracker.start(TrackingStore(tracking), {}, {}, f"bench-{name}")
        # The active run while the logged loop runs, as in training (MLflow's system-metrics
        # monitor runs with it); only then: with several methods side by side, runs kept
        # active across rounds would nest, and all but the last would never be ended.
        with self.tracker.active():
            self.logged = _Loop(options, data, gan, self.tracker, workdir / f"{name}-logged",
                                warmup)  # fmt: skip
        self.quiet = _Loop(options, data, gan, _DiscardingTracker(), workdir / f"{name}-quiet",
                           warmup)  # fmt: skip
        self.seconds: dict[str, list[float]] = {"bare": [], "logged": [], "quiet": [],
                                                "augment": []}  # fmt: skip
        # CPU time (user, system) spent inside each kind of timed round, summed over rounds.
        self.cpu = {kind: [0.0, 0.0] for kind in self.seconds}

    def round(self) -> None:
        """One timed round of each kind, in turn."""
        self._timed("bare", lambda: _in_calls(self._bare, self.steps, self.per_call))
        with self.tracker.active():  # entered and left outside the timing
            self._timed("logged", lambda: self.logged.time(self.steps))
        self._timed("quiet", lambda: self.quiet.time(self.steps))
        if self.gan.augments:
            self._timed("augment", lambda: _in_calls(self._augment, self.steps, self.per_call))

    def _timed(self, kind: str, run: Any) -> None:
        before = cpu_seconds()
        self.seconds[kind].append(run())
        after = cpu_seconds()
        self.cpu[kind][0] += after[0] - before[0]
        self.cpu[kind][1] += after[1] - before[1]

    def figures(self) -> dict[str, Any]:
        """The method's figures from its best rounds (after :meth:`round`)."""
        self.tracker.finish("FINISHED")
        cfg, batch = self.cfg, self.cfg.data.batch_size
        bare_seconds, loop_step, quiet_step = (
            min(self.seconds[k]) for k in ("bare", "logged", "quiet")
        )
        pipeline_rate = pipeline_batches_per_sec(self.data, batch, self.unlabelled)
        flops = self.gan.step_flops(batch)
        bare_rate, loop_rate = batch / bare_seconds, batch / loop_step
        augment = min(self.seconds["augment"]) if self.seconds["augment"] else None
        return {
            "model": cfg.model.name,
            "method": cfg.method.name,
            "batch_size": batch,
            "unlabelled_batch_size": self.unlabelled,
            "precision": cfg.train.precision,
            "strategy": cfg.train.strategy,
            "steps_per_loop": cfg.train.steps_per_loop,
            "timed_steps_per_round": self.steps,
            "full_loop_images_per_sec": loop_rate,
            "bare_step_images_per_sec": bare_rate,
            "loop_to_bare_ratio": loop_rate / bare_rate,
            "host_cost_per_step_us": (loop_step - bare_seconds) * 1e6,
            "logging_overhead": loop_step / quiet_step - 1.0,
            "augmentation_us_per_step": None if augment is None else augment * 1e6,
            "augmentation_share": None if augment is None else augment / bare_seconds,
            "input_pipeline_batches_per_sec": pipeline_rate,
            "input_pipeline_to_step_ratio": pipeline_rate * bare_seconds,
            "flops_per_step": flops,
            "flops_per_training_image": flops / batch,
            "bare_step_flops_per_sec": flops / bare_seconds,
            "bare_step_kernel_share": kernel_share(*self.cpu["bare"]),
            "full_loop_kernel_share": kernel_share(*self.cpu["logged"]),
        }


def _augmentation(gan: Any, strategy: Any, batch: Any) -> Any:
    """``run(count)``: ``count`` draws of ``gan.augmented`` on ``batch`` in one call, each
    compiled as the step compiles it and run per replica; returns one value of the last."""

    def per_replica(labelled: tf.Tensor, labels: tf.Tensor, unlabelled: tf.Tensor) -> Any:
        del labels
        return gan.augmented(labelled, unlabelled)

    def once() -> Any:
        results = strategy.experimental_local_results(strategy.run(per_replica, args=batch))
        return tf.nest.flatten(results)

    draw = tf.function(once, jit_compile=gan.train.jit_compile)

    @tf.function
    def repeated(count: tf.Tensor) -> tf.Tensor:
        outputs = draw()
        for _ in tf.range(count - 1):
            outputs = draw()
        return outputs[-1][0, 0, 0, 0] if outputs else tf.zeros([])

    return lambda count: repeated(tf.constant(count, tf.int64))


def bench_train(cfgs: list[TrainAppConfig], steps: int, warmup: int,
                rounds: int = 3) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each config's figures (see :class:`_MethodBench`), by method name: the methods of
    one width (the same data, model and training settings), timed in alternating rounds
    (each method's bare step, loop, quiet loop and augmentation, then the next method's)."""
    from ssgan.data import load_data
    from ssgan.training.distribute import make_strategy

    first = cfgs[0]
    keras.utils.set_random_seed(0)
    data = load_data(first.data, first.model.num_classes)
    strategy = make_strategy(first.train)
    with tempfile.TemporaryDirectory(prefix="ssgan-bench-") as tmp:
        benches = [_MethodBench(cfg, data, strategy, steps, warmup, Path(tmp)) for cfg in cfgs]
        for _ in range(rounds):
            for bench in benches:
                bench.round()
        return {bench.cfg.method.name: bench.figures() for bench in benches}


# The widths of the smoke preset: a step ~6x shorter than the default model's, which
# stands in for a fast accelerator where the host's cost per step shows.
SMOKE_WIDTHS = ["model.d_size_mult=8", "model.g_size_mult=8", "model.z_size=16",
                "data.batch_size=32"]  # fmt: skip
SMOKE_STEP_FACTOR = 5  # timed steps per round at smoke widths, relative to bench.steps


def bench_train_widths(
    overrides: list[str],
    widths: list[str],
    steps: int,
    warmup: int,
    rounds: int,
    methods: list[str] | None = None,
) -> dict[str, Any]:
    """:func:`bench_train` at each of ``widths`` (``default``, ``smoke``) in this process,
    and the float32 matmul peak the bare steps are related to. Without ``methods``, the
    config's method and each width's figures under the width; with ``methods``
    (``method=<name>`` each), each width's figures by method name."""
    from ssgan.config_checks import validate_train_config

    # Every config composed and checked before any work (a method's unknown key: one line).
    names: list[str | None] = [*methods] if methods else [None]  # None: the config's
    settings: dict[str, list[TrainAppConfig]] = {}
    for width in widths:
        extra = SMOKE_WIDTHS if width == "smoke" else []
        settings[width] = []
        for name in names:
            chosen = [f"method={name}"] if name else []
            cfg = compose_config("config", [*BENCH_DATA, *overrides, *chosen, *extra])
            validate_train_config(cfg)
            settings[width].append(typed(cfg, TrainAppConfig))
    results: dict[str, Any] = {}
    for width in widths:
        factor = SMOKE_STEP_FACTOR if width == "smoke" else 1
        by_method = bench_train(settings[width], steps * factor, warmup * factor, rounds)
        results[width] = by_method if methods else next(iter(by_method.values()))
    peak = matmul_peak_flops()
    results["matmul_peak_flops_per_sec"] = peak
    for width in widths:
        for figures in results[width].values() if methods else [results[width]]:
            figures["step_share_of_peak"] = figures["bare_step_flops_per_sec"] / peak
    return results
