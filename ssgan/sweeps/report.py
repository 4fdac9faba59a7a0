"""Sweep reports (``python -m ssgan.report``).

Turns a sweep — a grid (``ssgan.train -m``) or a search (``ssgan.tune``) — into a
markdown table and plots: each metric's mean ± sample std grouped by the swept settings,
seeds pooled; each metric against each swept setting; for a search, Optuna's optimisation
history and parameter importances. Written to ``output=`` (default ``reports/<id>/``) and
logged on the parent run under ``report/``.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, also on a head node without one

import matplotlib.pyplot as plt
import numpy as np

from ssgan.config import REPORT_METRICS
from ssgan.errors import UserError, first_line
from ssgan.sweeps.storage import load_existing
from ssgan.tracking.runs import Run, child_runs, get_run, log_artifacts_to
from ssgan.tracking.store import TrackingStore
from ssgan.tracking.tags import (
    BEST_PARAM_PREFIX,
    BEST_RUN_ID_TAG,
    BEST_TRIAL_TAG,
    COMMAND_TAG,
    N_TRIALS_TAG,
    OPTUNA_STORAGE_TAG,
    OPTUNA_STUDY_TAG,
    PRUNED_TAG,
    SWEEP_KIND_TAG,
    SWEPT_PARAMS_TAG,
    TRIAL_ROLE_TAG,
    TRIAL_TAG,
)

DEFAULT_METRICS = REPORT_METRICS  # the report command's default metrics
REPORT_ARTIFACT = "report"
# Keys that differ between a sweep's runs without being what was compared.
_NEVER_SWEPT = ("tracking.run_name", "resume")


@dataclass
class SweepRun:
    """One child run, reduced to what a report needs."""

    run_id: str
    outcome: str  # finished | pruned | failed | killed | running
    params: dict[str, str]
    metrics: dict[str, float]
    trial: int | None
    role: str


@dataclass
class Sweep:
    parent: Run
    kind: str  # grid | search
    runs: list[SweepRun]
    swept: list[str]  # the keys that were compared
    pooled: list[str]  # swept keys whose values are pooled (seeds)
    deleted: int = 0  # child runs deleted (not garbage-collected): left out of the report


def _outcome(run: Run) -> str:
    if run.data.tags.get(PRUNED_TAG) == "true":
        return "pruned"
    return run.info.status.lower()


def load_sweep(store: TrackingStore, parent_id: str) -> Sweep:
    """The parent run and its children; UserError if the run is not a sweep's parent."""
    parent = get_run(store, parent_id)
    children = child_runs(store, parent_id)
    deleted = len(child_runs(store, parent_id, deleted=True))
    if not children and deleted:
        raise UserError(
            f"run {parent_id}: all {deleted} of its child runs are deleted, so there is "
            "nothing to report; restore them first (mlflow runs restore --run-id <id>, or "
            "MlflowClient().restore_run)"
        )
    if not children:
        raise UserError(
            f"run {parent_id} has no child runs (mlflow.parentRunId): give the parent run id "
            "that ssgan.tune or ssgan.train -m printed (a sweep whose child runs were deleted "
            "and garbage-collected with mlflow gc has none left to report)"
        )
    runs = [
        SweepRun(
            run_id=r.info.run_id,
            outcome=_outcome(r),
            params=dict(r.data.params),
            metrics=dict(r.data.metrics),
            trial=int(r.data.tags[TRIAL_TAG]) if TRIAL_TAG in r.data.tags else None,
            role=r.data.tags.get(TRIAL_ROLE_TAG, ""),
        )
        for r in children
    ]
    declared = [
        _as_param(k, runs) for k in parent.data.tags.get(SWEPT_PARAMS_TAG, "").split(",") if k
    ]
    # A swept config group (model=a,b) or preset is no param: compare what varied then.
    known = declared and all(any(k in r.params for r in runs) for k in declared)
    swept = declared if known else _varying(runs)
    pooled = [k for k in swept if k.rsplit(".", 1)[-1].endswith("seed")]
    kind = parent.data.tags.get(SWEEP_KIND_TAG, "grid")
    return Sweep(parent, kind, runs, swept, pooled, deleted)


def _as_param(key: str, runs: list[SweepRun]) -> str:
    """A swept key as runs record it: a config group (``method=a,b``) by its ``name``."""
    if not any(key in r.params for r in runs) and any(f"{key}.name" in r.params for r in runs):
        return f"{key}.name"
    return key


def _varying(runs: list[SweepRun]) -> list[str]:
    keys = sorted({k for r in runs for k in r.params} - set(_NEVER_SWEPT))
    return [k for k in keys if len({r.params.get(k) for r in runs}) > 1]


def _number(text: str | None) -> float | str | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, float) else (1, str(value))


def group_rows(sweep: Sweep, metrics: list[str]) -> list[dict[str, Any]]:
    """One row per combination of swept values (seeds pooled), best first by the first
    metric. Means and stds use finished runs only; pruned and failed runs are counted."""
    keys = [k for k in sweep.swept if k not in sweep.pooled]
    groups: dict[tuple, list[SweepRun]] = {}
    for run in sweep.runs:
        group = tuple(_number(run.params.get(k)) for k in keys)
        if sweep.kind == "search":
            group = (run.trial, *group)
        groups.setdefault(group, []).append(run)
    rows = []
    for group, members in groups.items():
        finished = [r for r in members if r.outcome == "finished"]
        row: dict[str, Any] = {"values": group, "runs": len(members)}
        row["pruned"] = sum(r.outcome == "pruned" for r in members)
        row["failed"] = sum(r.outcome in ("failed", "killed", "running") for r in members)
        row["role"] = ",".join(sorted({r.role for r in members if r.role}))
        for metric in metrics:
            values = np.array([r.metrics[metric] for r in finished if metric in r.metrics])
            row[metric] = (
                (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None)
                if len(values)
                else None
            )
        rows.append(row)
    first = metrics[0]
    rows.sort(key=lambda r: -r[first][0] if r[first] else math.inf)
    return rows


def _cell(stat: tuple[float, float | None] | None) -> str:
    if stat is None:
        return "—"
    mean, std = stat
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def markdown_table(sweep: Sweep, metrics: list[str]) -> str:
    keys = [k for k in sweep.swept if k not in sweep.pooled]
    head = (["trial"] if sweep.kind == "search" else []) + keys
    show_role = any(r.role for r in sweep.runs)
    columns = head + (["role"] if show_role else []) + metrics + ["runs", "pruned", "failed"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in group_rows(sweep, metrics):
        cells = [_value_text(v) for v in row["values"]]
        if show_role:
            cells.append(row["role"] or "sampled")
        cells += [_cell(row[m]) for m in metrics]
        cells += [str(row["runs"]), str(row["pruned"]), str(row["failed"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_against(sweep: Sweep, metric: str, key: str) -> Any:
    """``metric`` of every run against one swept setting: finished runs filled, pruned
    runs hollow (their best before pruning), the per-value mean as a line."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    # Floats when every value is a number (then plotted at its value), else labels.
    values: list[Any] = [_number(r.params.get(key)) for r in sweep.runs]
    numeric = all(isinstance(v, float) for v in values)
    labels = sorted({v for v in values}, key=_sort_key)
    position = {v: (v if numeric else i) for i, v in enumerate(labels)}
    styles: dict[str, dict[str, Any]] = {  # matplotlib's scatter keywords
        "finished": {"color": "#4c72b0"},
        "pruned": {"facecolors": "none", "edgecolors": "#dd8452"},
    }
    for outcome, style in styles.items():
        xs, ys = [], []
        for run, value in zip(sweep.runs, values, strict=True):
            if run.outcome == outcome and metric in run.metrics:
                xs.append(position[value])
                ys.append(run.metrics[metric])
        if xs:
            ax.scatter(xs, ys, label=outcome, **style)
    means = []
    for value in labels:
        ys = [
            r.metrics[metric]
            for r, v in zip(sweep.runs, values, strict=True)
            if v == value and r.outcome == "finished" and metric in r.metrics
        ]
        if ys:
            means.append((position[value], float(np.mean(ys))))
    if sweep.kind == "grid" and len(means) > 1:
        ax.plot(*zip(*means, strict=True), color="#4c72b0", alpha=0.6, label="mean")
    if numeric and min(labels) > 0 and max(labels) / min(labels) >= 20:
        ax.set_xscale("log")
    elif numeric:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 4))
    if not numeric:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels])
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def optuna_figures(parent: Run) -> tuple[dict[str, Any], list[str]]:
    """Optuna's history and importance plots of a search's study; notes on any skipped."""
    import optuna
    import optuna.visualization.matplotlib as optuna_plots

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    tags = parent.data.tags
    storage, name = tags[OPTUNA_STORAGE_TAG], tags[OPTUNA_STUDY_TAG]
    figures: dict[str, Any] = {}
    notes: list[str] = []
    try:
        study = load_existing(storage, name)
    except UserError as err:  # a damaged storage file
        return figures, [f"Optuna plots: not drawn ({err})"]
    if study is None:  # opening a missing file would create an empty one: say so instead
        return figures, [
            f"Optuna plots: not drawn (study {name} is not in storage {storage}: the storage "
            "is not here, or does not hold it)"
        ]
    for name, draw in (
        ("optuna_history.png", optuna_plots.plot_optimization_history),
        ("optuna_importances.png", optuna_plots.plot_param_importances),
        ("optuna_intermediate_values.png", optuna_plots.plot_intermediate_values),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks these plots experimental
                ax: Any = draw(study)  # an Axes, or an array of them (not in its hint)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            notes.append(f"{name}: not drawn ({first_line(err)})")
            continue
        figure = ax.figure if hasattr(ax, "figure") else np.ravel(ax)[0].figure
        figure.set_size_inches(6.4, 4.0)
        figure.tight_layout()
        figures[name] = figure
    return figures, notes


def _header(sweep: Sweep, metrics: list[str], status: str) -> str:
    tags = sweep.parent.data.tags
    outcomes = [r.outcome for r in sweep.runs]
    counts = ", ".join(f"{outcomes.count(o)} {o}" for o in sorted(set(outcomes)))
    lines = [
        f"# Sweep report: {sweep.parent.info.run_name}",
        "",
        f"- parent run: `{sweep.parent.info.run_id}` ({sweep.kind})",
        f"- command: `{tags.get(COMMAND_TAG, '')}`",
        f"- runs: {len(sweep.runs)} ({counts})"
        + (f"; {sweep.deleted} deleted child runs left out" if sweep.deleted else ""),
        f"- swept: {', '.join(sweep.swept) or '—'}"
        + (f"; pooled: {', '.join(sweep.pooled)}" if sweep.pooled else ""),
        f"- metrics: {', '.join(metrics)}: mean ± sample std over finished runs; "
        "pruned runs count but keep only partial metrics",
    ]
    if status == "RUNNING":  # workers are still at it
        budget = f" of {tags[N_TRIALS_TAG]} trials" if N_TRIALS_TAG in tags else ""
        finished = sum(o not in ("running", "killed") for o in outcomes)
        lines.insert(
            2,
            f"**Partial report**: the sweep is still running ({finished}{budget} finished); "
            "write it again when it ends.\n",
        )
    else:
        lines.insert(3, f"- status: {status}: the sweep has ended; this report is complete")
    if BEST_TRIAL_TAG in tags:
        best = [
            f"{k.removeprefix(BEST_PARAM_PREFIX)}={v}"
            for k, v in sorted(tags.items())
            if k.startswith(BEST_PARAM_PREFIX)
        ]
        lines.append(
            f"- best trial: {tags[BEST_TRIAL_TAG]} "
            f"(run `{tags.get(BEST_RUN_ID_TAG, '')}`), " + " ".join(best)
        )
    return "\n".join(lines)


def write_report(
    store: TrackingStore,
    parent_id: str,
    out_dir: Path | None,
    metrics: list[str] | tuple[str, ...] = DEFAULT_METRICS,
    ending: str | None = None,
) -> str:
    """Write ``report.md`` and ``plots/`` to ``out_dir`` (a temporary folder if None),
    log them on the parent run under ``report/``; return where they are.

    ``ending``: the status the sweep's end is about to give the parent run (it logs the
    report first, so a parent is never FINISHED without it); else the run's own status
    says whether the report is partial."""
    sweep = load_sweep(store, parent_id)
    metrics = list(metrics)
    logged = sorted({k for r in sweep.runs for k in r.metrics})
    for metric in metrics:
        if metric not in logged:
            raise UserError(
                f"metrics: {metric}: no run of this sweep logged it (logged: {', '.join(logged)})"
            )
    with tempfile.TemporaryDirectory(prefix="ssgan-report-") as tmp:
        folder = Path(out_dir) if out_dir is not None else Path(tmp)
        (folder / "plots").mkdir(parents=True, exist_ok=True)
        figures = {
            f"{metrics[0].replace('/', '_')}_vs_{key}.png": plot_against(sweep, metrics[0], key)
            for key in sweep.swept
            if key not in sweep.pooled
        }
        notes: list[str] = []
        if sweep.kind == "search" and OPTUNA_STUDY_TAG in sweep.parent.data.tags:
            extra, notes = optuna_figures(sweep.parent)
            figures |= extra
        for name, figure in figures.items():
            figure.savefig(folder / "plots" / name, dpi=110)
            plt.close(figure)
        status = ending or sweep.parent.info.status
        text = [_header(sweep, metrics, status), "", markdown_table(sweep, metrics), ""]
        text += [f"![{name}](plots/{name})" for name in figures]
        text += [f"\n_{note}_" for note in notes]
        (folder / "report.md").write_text("\n".join(text) + "\n")
        log_artifacts_to(store, parent_id, folder, REPORT_ARTIFACT)
        if out_dir is None:
            return f"{sweep.parent.info.artifact_uri}/{REPORT_ARTIFACT}/report.md"
    return str(folder / "report.md")
