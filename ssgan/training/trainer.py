"""The training loop: steps, per-epoch evaluation, checkpoints, samples, metrics.

The maths of one step lives in the method (:mod:`ssgan.methods`); this module decides when to step,
evaluate, checkpoint and log. Resuming is exact: the checkpoint holds the models,
optimizers, the latent-noise RNG and the global step, and the input pipeline's batch for
step ``s`` is a pure function of the data seed and ``s``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import tensorflow as tf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ssgan.data import SemiSupervisedData
from ssgan.data.pipeline import eval_batches, train_batches
from ssgan.errors import disk_full_reason, first_line
from ssgan.methods.base import ClassifierMethod
from ssgan.methods.gan import FeatureMatchingGAN
from ssgan.plots import image_grid
from ssgan.preprocess import from_model_range, to_model_range
from ssgan.stopping import check_stop
from ssgan.training.interface import CheckpointError, EpochHook, NonFiniteLossError, Tracker
from ssgan.training.job import checkpoint_before_stop
from ssgan.training.loop_options import LoopOptions
from ssgan.training.summary import RunSummary, TrainingState

log = logging.getLogger("ssgan.train")

SAMPLE_GRID = 8  # 8x8 generator samples per epoch


def _unreadable(path: str) -> str | None:
    """Why a checkpoint cannot be read back in full (None when it can). Reading every
    tensor first keeps a damaged checkpoint from half-restoring the models."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as err:  # any failure to read means: do not restore from it
        return first_line(err)[:200]
    return None


def steps_per_epoch(options: LoopOptions, data: SemiSupervisedData) -> int:
    """``train.steps_per_epoch``, or one pass over the pool an epoch is measured in."""
    if options.steps_per_epoch > 0:
        return options.steps_per_epoch
    if options.labels_only:
        return max(1, math.ceil(len(data.labelled_x) / options.batch_size))
    return max(1, math.ceil(len(data.unlabelled_x) / options.unlabelled_batch_size))


def initialisation_images(options: LoopOptions, data: SemiSupervisedData) -> tf.Tensor:
    """The first ``train.init_batch_size`` unlabelled images of the run's stream (0: one
    training batch), in [-1, 1]: what data-dependent initialisation measures D on."""
    count = options.init_batch_size or options.batch_size
    size = options.unlabelled_batch_size
    stream = train_batches(data, options.batch_size, options.data_seed, 0, size)
    batches = stream.take(math.ceil(count / size))
    return tf.concat([unlabelled for _, _, unlabelled in batches], axis=0)[:count]


def statistics_images(options: LoopOptions, data: SemiSupervisedData) -> np.ndarray:
    """Real training images, in [-1, 1], that the averaged classifier's batch-norm
    statistics are measured on: ``train.ema_bn_images`` of the pool the method trains on
    (labelled images for the supervised baseline), the same random subset every time."""
    pool = data.labelled_x if options.labels_only else data.unlabelled_x
    count = min(options.ema_bn_images, len(pool))
    rng = np.random.default_rng([options.data_seed, 3])
    chosen = np.sort(rng.choice(len(pool), count, replace=False))
    return to_model_range(pool[chosen]).numpy()


def accuracy(
    classifier: tf.keras.Model, images: np.ndarray, labels: np.ndarray, batch: int
) -> tuple[float, float]:
    """Top-1 accuracy in inference mode (moving BN statistics, no dropout), over all
    images and balanced (the mean of the per-class accuracies of the classes present:
    SVHN's classes are far from equal, 1 is five times as common as 9)."""
    predicted = []
    for batch_images, _ in eval_batches(images, labels, batch):
        logits, _ = _predict(classifier, batch_images)
        predicted.append(tf.argmax(logits, -1).numpy())
    if not len(labels):
        return 0.0, 0.0
    right = np.concatenate(predicted) == labels
    per_class = [right[labels == k].mean() for k in np.unique(labels)]
    return float(right.mean()), float(np.mean(per_class))


@tf.function(reduce_retracing=True)
def _predict(classifier: tf.keras.Model, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return classifier(images, training=False)


class Trainer:
    """Runs ``train.epochs`` epochs of the method's steps with evaluation and checkpoints."""

    def __init__(
        self,
        options: LoopOptions,
        data: SemiSupervisedData,
        gan: ClassifierMethod,
        tracker: Tracker,
        checkpoint_dir: Path,
        strategy: tf.distribute.Strategy,
        after_save: Callable[[], None] | None = None,
        on_epoch_end: EpochHook | None = None,
    ) -> None:
        self.options, self.data, self.gan, self.tracker = options, data, gan, tracker
        self.strategy = strategy
        self.after_save = after_save
        self.on_epoch_end = on_epoch_end
        self.steps_per_epoch = steps_per_epoch(options, data)
        self.total_steps = self.steps_per_epoch * options.epochs
        self.state = TrainingState()
        self.checkpoint = tf.train.Checkpoint(
            step=self.state.step,
            best_val_accuracy=self.state.best_val_accuracy,
            best_test_accuracy=self.state.best_test_accuracy,
            best_epoch=self.state.best_epoch,
            **gan.checkpoint_objects(),
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(checkpoint_dir / "last"), max_to_keep=2
        )
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(discriminator=gan.classifier()),
            str(checkpoint_dir / "best"),
            max_to_keep=1,
        )
        self.eval_seconds = 0.0  # time spent in per-epoch evaluation (benchmarks subtract it)
        self.progress: bool | None = None  # progress bar: None = only on a terminal
        self._statistics_images: np.ndarray | None = None
        self._statistics_step = -1  # the step the averaged classifier's statistics are for
        # Fixed noise so sample grids of successive epochs are comparable; drawn from the
        # training distribution, or the grids would show inputs G never trained on.
        self.sample_z: tf.Tensor | None = None
        if isinstance(gan, FeatureMatchingGAN):
            self.sample_z = gan.fixed_noise(SAMPLE_GRID * SAMPLE_GRID)

    # -- checkpoints -------------------------------------------------------------------

    def restore_latest(self) -> int:
        """Restore the newest checkpoint that reads back whole, if any; return its step.

        A damaged newest checkpoint (say a truncated data file) is reported and the one
        before it is used; when none reads back, CheckpointError says so rather than
        training from step 0 on top of the run's history.
        """
        failed: list[str] = []
        for path in reversed(self.manager.checkpoints):  # newest first
            problem = _unreadable(path)
            if problem is not None:
                failed.append(f"{Path(path).name} ({problem})")
                continue
            self.checkpoint.restore(path).assert_existing_objects_matched()
            if failed:
                log.warning(
                    f"checkpoint {'; '.join(failed)} does not restore: resuming from "
                    f"{Path(path).name} (step {int(self.state.step.numpy())}) instead"
                )
            return int(self.state.step.numpy())
        if failed:
            raise CheckpointError(
                f"no checkpoint in {self.manager.directory} restores: {'; '.join(failed)}; "
                "the run cannot continue from where it stopped (start a new run)"
            )
        return int(self.state.step.numpy())

    def _save(self) -> None:
        # Every checkpoint's averaged classifier carries its own statistics, so one
        # exported from ``checkpoints/last`` is as right as the best one.
        started = time.perf_counter()
        self._refresh_classifier()
        self.eval_seconds += time.perf_counter() - started
        # Metrics first: a checkpoint never gets ahead of the run's record, so a run that
        # fails because the store refused metrics resumes from a step whose history is
        # complete, and the resumed run fills in the rest.
        self.tracker.flush()
        # CheckpointManager writes the data files first and the index last, atomically,
        # so the latest checkpoint it names is always complete.
        self._write_checkpoint(self.manager)
        if self.after_save is not None:
            self.after_save()
        self._last_save = time.monotonic()
        # The run's record says a checkpoint exists: one missing later was lost, while a
        # run without this never got one and may start again (training/resume.py).
        self.tracker.log_checkpoint(int(self.state.step.numpy()))

    def _save_best(self) -> None:
        """The classifier of the best validation epoch, what the run finally exports."""
        self._write_checkpoint(self.best_manager)

    def _write_checkpoint(self, manager: tf.train.CheckpointManager) -> None:
        """Save; on failure remove the partial ``ckpt-N_temp`` folder TF leaves behind, and
        say in one line what failed (a full disk, most often)."""
        step = int(self.state.step.numpy())
        try:
            manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as err:
            for partial in Path(manager.directory).glob("*_temp*"):
                shutil.rmtree(partial, ignore_errors=True)
            reason = disk_full_reason(err) or first_line(err)[:200]
            raise CheckpointError(
                f"cannot write checkpoint ckpt-{step} in {manager.directory} ({reason}): the "
                f"run stops here; free disk space, then resume={self.tracker.run_id} "
                "continues from its last complete checkpoint"
            ) from err

    # -- the averaged classifier ---------------------------------------------------------

    def _refresh_classifier(self) -> None:
        """Re-estimate the averaged classifier's batch-norm statistics for its current
        weights (once per step; nothing to do without averaging)."""
        step = int(self.state.step.numpy())
        if self.gan.ema_discriminator is None or step == self._statistics_step:
            return
        if self._statistics_images is None:
            self._statistics_images = statistics_images(self.options, self.data)
        batch = self.options.eval_batch_size
        self.gan.refresh_classifier_statistics(self._statistics_images, batch)
        self._statistics_step = step

    # -- the loop ----------------------------------------------------------------------

    def fit(self) -> RunSummary:
        """Train from the restored step to the end; return the best epoch's figures."""
        self.start()
        self.run_until(self.total_steps)
        self.tracker.flush()
        return self.summary()

    def summary(self) -> RunSummary:
        """The figures so far (after :meth:`start`), as the training state holds them."""
        return self.state.summary(self.tracker.run_id, self._rate)

    def start(self) -> None:
        """Open the input stream at the restored step; initialise a fresh model."""
        start = int(self.state.step.numpy())
        batch_size, seed = self.options.batch_size, self.options.data_seed
        dataset = train_batches(
            self.data, batch_size, seed, start, self.options.unlabelled_batch_size
        )
        if self.strategy.num_replicas_in_sync > 1:
            dataset = self.strategy.experimental_distribute_dataset(dataset)
        self._batches = iter(dataset)
        if start == 0:
            # Data-dependent initialisation (weight-normalised models): D on the first
            # train.init_batch_size unlabelled images, G on one batch of noise.
            self.gan.initialize(initialisation_images(self.options, self.data), batch_size)
        self._epoch: int | None = None  # the epoch under way; None between two
        self._last_save = time.monotonic()
        self._bar: tqdm[NoReturn] | None = None
        self._rate = 0.0

    def run_until(self, target: int) -> None:
        """Train up to global step ``target`` (evaluating and checkpointing on the way)
        with the stream :meth:`start` opened; calls continue where the last one stopped."""
        step = int(self.state.step.numpy())
        with self._bar_and_log_lines():
            while step < target:
                if self._epoch != step // self.steps_per_epoch:
                    self._begin_epoch(step)
                assert self._bar is not None and self._epoch is not None  # set by _begin_epoch
                count = self._chunk(step, target)
                losses = self._steps(step, count)
                step += count
                self._bar.update(count)
                self._window_steps += count
                if step % self.options.log_every == 0 or step % self.steps_per_epoch == 0:
                    self._log_losses(losses, step)
                if step % self.steps_per_epoch == 0:
                    self._bar.close()
                    self._end_epoch(self._epoch, step)
                    self._save()
                    self._epoch = None
                elif step % self.options.checkpoint_every == 0 or self._checkpoint_due():
                    self._save()
                elif checkpoint_before_stop():
                    self._save()  # asked to stop (SIGTERM...): keep every step done so far
                check_stop()

    def _checkpoint_due(self) -> bool:
        """``train.checkpoint_every_s`` passed since the last checkpoint (or the start)."""
        every = self.options.checkpoint_every_s
        return every > 0 and time.monotonic() - self._last_save >= every

    def _bar_and_log_lines(self) -> contextlib.AbstractContextManager:
        """While the progress bar shows (terminals only), log lines print above it."""
        shown = self.progress if self.progress is not None else sys.stderr.isatty()
        return logging_redirect_tqdm() if shown else contextlib.nullcontext()

    def _chunk(self, step: int, target: int) -> int:
        """Steps for the next compiled call: ``train.steps_per_loop``, cut short so that
        every epoch end, checkpoint and log step falls on the end of a call."""
        count = min(self.options.steps_per_loop, target - step)
        for every in (
            self.steps_per_epoch,
            self.options.checkpoint_every,
            self.options.log_every,
        ):
            count = min(count, every - step % every)
        return count

    def _begin_epoch(self, step: int) -> None:
        epoch = step // self.steps_per_epoch
        self._epoch = epoch
        self.gan.set_learning_rate(self.options.learning_rate(epoch))
        self._bar = tqdm(
            total=self.steps_per_epoch,
            initial=step - epoch * self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.options.epochs}",
            unit="step",
            leave=False,
            disable=None if self.progress is None else not self.progress,
        )
        self._window_start, self._window_steps = time.perf_counter(), 0

    def _log_losses(self, losses: dict[str, float], step: int) -> None:
        elapsed = time.perf_counter() - self._window_start
        self._rate = self._window_steps * self.options.batch_size / max(elapsed, 1e-9)
        assert self._bar is not None  # called within an epoch
        shown = {key.removesuffix("_loss"): f"{value:.3f}" for key, value in losses.items()}
        self._bar.set_postfix(shown | {"img_s": f"{self._rate:.0f}"})
        self.tracker.log_metrics(
            {f"train/{k}": v for k, v in losses.items()} | {"train/images_per_sec": self._rate},
            step,
        )
        self._window_start, self._window_steps = time.perf_counter(), 0

    def _steps(self, step: int, count: int) -> dict[str, float]:
        """Run ``count`` steps from global step ``step`` in one call; their mean losses."""
        outputs, finite_steps = self.gan.train_steps(self._batches, count, self.state.step)
        losses = {key: float(outputs[key]) for key in self.gan.metric_keys}
        if int(finite_steps) < count:
            key, value = next((k, v) for k, v in losses.items() if not math.isfinite(v))
            raise NonFiniteLossError(
                f"train/{key} became {value} at step {step + int(finite_steps) + 1}: "
                f"training diverged (try a lower train.lr than {self.options.lr})"
            )
        return losses

    def _end_epoch(self, epoch: int, step: int) -> None:
        started = time.perf_counter()
        metrics = self._evaluate_and_log(epoch, step)
        self.eval_seconds += time.perf_counter() - started
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch + 1, metrics)

    def _evaluate_and_log(self, epoch: int, step: int) -> dict[str, float]:
        self._refresh_classifier()
        classifier = self.gan.classifier()
        batch = self.options.eval_batch_size
        val, val_balanced = accuracy(classifier, self.data.val_x, self.data.val_y, batch)
        test, test_balanced = accuracy(classifier, self.data.test_x, self.data.test_y, batch)
        metrics = {
            "val/accuracy": val,
            "test/accuracy": test,
            "val/balanced_accuracy": val_balanced,
            "test/balanced_accuracy": test_balanced,
            "train/lr": self.options.learning_rate(epoch),
        }
        if val > float(self.state.best_val_accuracy.numpy()):
            self.state.best_val_accuracy.assign(val)
            self.state.best_test_accuracy.assign(test)
            self.state.best_epoch.assign(epoch + 1)
            self._save_best()
        self.tracker.log_metrics(metrics, step)
        if self.options.sample_grid and isinstance(self.gan, FeatureMatchingGAN):
            samples = from_model_range(self.gan.samples(self.sample_z)).numpy()
            self.tracker.log_image(image_grid(samples), f"samples/epoch_{epoch + 1:03d}.png")
        log.info(
            f"epoch {epoch + 1}/{self.options.epochs}: val/accuracy {val:.4f} "
            f"test/accuracy {test:.4f} (step {step})"
        )
        return metrics
