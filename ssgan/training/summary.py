"""How a training run ended: the progress its checkpoints keep (``TrainingState``) and the
summary read from it (``RunSummary``), with the metrics and the lines it becomes."""

from __future__ import annotations

from dataclasses import dataclass, field

import tensorflow as tf


@dataclass
class TrainingState:
    """Progress that survives a restart (saved in every checkpoint)."""

    step: tf.Variable = field(default_factory=lambda: tf.Variable(0, dtype=tf.int64))
    best_val_accuracy: tf.Variable = field(default_factory=lambda: tf.Variable(-1.0))
    best_test_accuracy: tf.Variable = field(default_factory=lambda: tf.Variable(-1.0))
    best_epoch: tf.Variable = field(default_factory=lambda: tf.Variable(0, dtype=tf.int64))

    def summary(self, run_id: str, images_per_sec: float = 0.0) -> RunSummary:
        """The run's figures so far: its steps and its best epoch's accuracies."""
        return RunSummary(
            run_id=run_id,
            steps=int(self.step.numpy()),
            best_val_accuracy=float(self.best_val_accuracy.numpy()),
            best_test_accuracy=float(self.best_test_accuracy.numpy()),
            best_epoch=int(self.best_epoch.numpy()),
            images_per_sec=images_per_sec,
        )


@dataclass(frozen=True)
class RunSummary:
    """A training run's outcome: its id, steps, the best epoch's accuracies, and the
    exported model with its test accuracy (None when nothing was exported: a worker that is
    not the chief, or a run its epoch hook stopped early, which says why)."""

    run_id: str
    steps: int
    best_val_accuracy: float
    best_test_accuracy: float
    best_epoch: int
    images_per_sec: float = 0.0  # the last logging window's training rate
    model_uri: str | None = None
    export_test_accuracy: float | None = None
    chief: bool = True  # False: a multi-worker job's other worker, which exports nothing
    stopped_early: str | None = None  # why the epoch hook ended the run (a pruned trial)

    def to_metrics(self) -> dict[str, float]:
        """The MLflow metrics the run ends with (at step ``steps``): the best epoch's, and
        the exported model's test accuracy once there is one."""
        metrics = {
            "best/val_accuracy": self.best_val_accuracy,
            "best/test_accuracy": self.best_test_accuracy,
            "best/epoch": self.best_epoch,
        }
        if self.export_test_accuracy is not None:
            metrics["export/test_accuracy"] = self.export_test_accuracy
        return metrics

    def text(self) -> str:
        """What ``python -m ssgan.train`` prints when the run ends."""
        if not self.chief:
            return f"run_id: {self.run_id} (trained as a worker; the chief exported the model)"
        export = self.export_test_accuracy
        return (
            f"run_id: {self.run_id}\n"
            f"model: {self.model_uri}\n"
            f"best val accuracy {self.best_val_accuracy:.4f} (epoch {self.best_epoch}), "
            f"exported model test accuracy {float('nan') if export is None else export:.4f}"
        )
