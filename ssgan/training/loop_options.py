"""What the training loop reads of the config: one small frozen value (the way orbit's
``StandardTrainerOptions`` configures its trainer), built once from the typed sections."""

from __future__ import annotations

from dataclasses import dataclass

from ssgan.config import DataConfig, TrainConfig
from ssgan.method_config import MethodConfig, trains_on_labels_only, unlabelled_ratio


@dataclass(frozen=True)
class LoopOptions:
    """``train.*``, ``data.*`` and ``method.*`` values :class:`~ssgan.training.trainer.Trainer`
    uses (docs/training.md has each key's meaning)."""

    labels_only: bool  # the baseline: an epoch is a pass over the labelled pool
    epochs: int
    steps_per_epoch: int  # 0 = one pass over the pool the method reads
    batch_size: int  # labelled images a step
    unlabelled_batch_size: int  # unlabelled images a step (FixMatch: mu x batch_size)
    data_seed: int  # the input stream's seed (data.seed)
    init_batch_size: int  # 0 = one batch
    ema_bn_images: int
    eval_batch_size: int
    log_every: int
    checkpoint_every: int
    checkpoint_every_s: float  # 0 = by steps and epochs only
    steps_per_loop: int
    sample_grid: bool
    lr: float
    lr_decay: float
    lr_schedule: str  # constant | linear_decay
    lr_decay_start_epoch: int | None

    @classmethod
    def from_config(cls, train: TrainConfig, data: DataConfig, method: MethodConfig) -> LoopOptions:
        return cls(
            labels_only=trains_on_labels_only(method),
            epochs=train.epochs,
            steps_per_epoch=train.steps_per_epoch,
            batch_size=data.batch_size,
            unlabelled_batch_size=data.batch_size * unlabelled_ratio(method),
            data_seed=data.seed,
            init_batch_size=train.init_batch_size,
            ema_bn_images=train.ema_bn_images,
            eval_batch_size=train.eval_batch_size,
            log_every=train.log_every,
            checkpoint_every=train.checkpoint_every,
            checkpoint_every_s=train.checkpoint_every_s,
            steps_per_loop=train.steps_per_loop,
            sample_grid=train.sample_grid,
            lr=train.lr,
            lr_decay=train.lr_decay,
            lr_schedule=train.lr_schedule,
            lr_decay_start_epoch=train.lr_decay_start_epoch,
        )

    def learning_rate(self, epoch: int) -> float:
        """Learning rate for a 0-based epoch.

        ``constant``: ``lr * lr_decay**epoch``. ``linear_decay``: the schedule of Salimans
        et al.'s SVHN code, constant up to epoch s = ``train.lr_decay_start_epoch`` (null:
        two thirds of ``train.epochs``), then linearly towards 0 at ``train.epochs``:
        ``lr * min(1, (epochs - epoch) / (epochs - s))`` (the reference: s = 600 of 900).
        """
        lr = self.lr * self.lr_decay**epoch
        if self.lr_schedule == "linear_decay":
            start = self.lr_decay_start_epoch
            first = 2.0 * self.epochs / 3.0 if start is None else float(start)
            lr *= min(1.0, (self.epochs - epoch) / (self.epochs - first))
        return lr
