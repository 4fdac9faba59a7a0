"""A search's outcome (``SearchOutcome``): its trials' counts and best trial, and what they
become: the parent run's tags and metrics, and the lines ``python -m ssgan.tune`` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssgan.sweeps.space import format_value
from ssgan.tracking.tags import (
    BEST_PARAM_PREFIX,
    BEST_RUN_ID_TAG,
    BEST_TRIAL_TAG,
    TRIALS_COMPLETE_TAG,
    TRIALS_FAILED_TAG,
    TRIALS_PRUNED_TAG,
)


@dataclass(frozen=True)
class SearchOutcome:
    """How a search's counted trials ended, and its best trial (the highest validation
    accuracy) with its MLflow run and values; the baseline trial's accuracy when it ran
    the base config's values; the report written when the search ended."""

    parent_run_id: str
    study: str
    complete: int
    pruned: int
    failed: int
    n_counted: int  # trials that used the budget (complete, pruned or failed)
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_run_id: str = ""
    baseline_value: float | None = None
    report: str | None = None

    def parent_tags(self) -> dict[str, str]:
        """The tags the parent run gets when the search ends: counts, best trial, values."""
        tags = {
            TRIALS_COMPLETE_TAG: str(self.complete),
            TRIALS_PRUNED_TAG: str(self.pruned),
            TRIALS_FAILED_TAG: str(self.failed),
            BEST_TRIAL_TAG: str(self.best_trial),
            BEST_RUN_ID_TAG: self.best_run_id,
        }
        return tags | {BEST_PARAM_PREFIX + k: format_value(v) for k, v in self.best_params.items()}

    def to_metrics(self) -> dict[str, float]:
        """The parent run's metrics (at step ``n_counted``): the best trial's validation
        accuracy, and the baseline's when it ran."""
        metrics = {} if self.best_value is None else {"best/val_accuracy": self.best_value}
        if self.baseline_value is not None:
            metrics["baseline/val_accuracy"] = self.baseline_value
        return metrics

    def text(self) -> str:
        """What ``python -m ssgan.tune`` prints when a search ends."""
        lines = [
            f"parent_run_id: {self.parent_run_id}",
            f"trials: {self.complete} complete, {self.pruned} pruned, {self.failed} failed",
        ]
        if self.best_trial is not None:
            params = " ".join(f"{k}={format_value(v)}" for k, v in self.best_params.items())
            lines.append(
                f"best: trial {self.best_trial} (run {self.best_run_id}) "
                f"val accuracy {self.best_value:.4f}: {params}"
            )
        if self.baseline_value is not None:
            lines.append(
                f"baseline (the base config's values): val accuracy {self.baseline_value:.4f}"
            )
        lines.append(f"report: python -m ssgan.report parent_run_id={self.parent_run_id}")
        return "\n".join(lines)
