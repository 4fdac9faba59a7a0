"""Turn the label-budget sweep into its table, goals, plots, and the ablation's table.

    python experiments/label_budget/summarize.py [--parent RUN_ID] [--out DIR]
    python experiments/label_budget/summarize.py --ablation [--out DIR]

The sweep is one MLflow parent run (the newest grid sweep of the experiment unless
``--parent`` names one). ``ssgan.report`` groups its runs by the swept settings with the
seeds pooled; this script writes the generic report (``report/``, also logged on the
parent run) and, from the same runs, the study's own view: test error per label budget,
SSGAN against the supervised baseline, the ratio per seed (the same seed means the same
labelled images, split and initialisation in both modes), each goal as met or not, and
validation accuracy against step for every run.

Test error = 1 - best/test_accuracy: the test accuracy of the epoch chosen on the
validation split (the test set is never used for choices). Mean ± sample std over seeds.
The store is ``--tracking-uri``, by default ``$MLFLOW_TRACKING_URI`` or
``sqlite:///mlflow.db``, as for training.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from ssgan import host
from ssgan.cli import user_errors
from ssgan.config import TrackingConfig
from ssgan.errors import UserError
from ssgan.sweeps.report import Sweep, group_rows, load_sweep, write_report
from ssgan.tracking.runs import get_run, metric_history, newest_parent_run, runs_dataframe
from ssgan.tracking.store import TrackingStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
METRIC = "best/test_accuracy"
MODES = ("supervised", "ssgan")
COLOURS = {"supervised": ("#dd8452", "supervised baseline"), "ssgan": ("#4c72b0", "SSGAN")}
# The study's goals: SSGAN's test error at most this fraction of the baseline's, every seed.
RATIO_GOALS = {1000: 0.6, 100: 0.8}
EARLY_FRACTION, EARLY_ACCURACY = 0.2, 0.5  # SSGAN val accuracy after 20 % of its steps
# SVHN's supervised band at 1000 labels (Oliver et al. 2018: 12.83 %, WRN-28-2; Laine &
# Aila 2017: 20.47 %, 13-layer ConvNet): the synthetic digits are calibrated to land in it.
SUPERVISED_BAND = (1000, 0.12, 0.20)
# The ablation's runs (tracking.run_name in ablation.sh), in table order.
ABLATION = {
    "small": "the small preset (failing)",
    "width": "width → default (d 64, g 32)",
    "batch": "batch → default (128)",
    "pool": "pool → default (45,000 images)",
}

# -- the study ------------------------------------------------------------------------------

# The swept method as runs record it: method.name (train.mode in sweeps made before the
# method group).
METHOD_KEYS = ("method.name", "train.mode")


def errors_by_budget(sweep: Sweep) -> dict[tuple[str, int], tuple[float, float, int]]:
    """{(mode, labels): (mean test error, std, finished runs)} from the report's rows."""
    keys = [k for k in sweep.swept if k not in sweep.pooled]
    method = next((k for k in keys if k in METHOD_KEYS), "method.name")
    if set(keys) != {method, "data.num_labeled"}:
        raise UserError(
            f"run {sweep.parent.info.run_id} swept {', '.join(keys) or 'nothing'} (seeds "
            "pooled), not method and data.num_labeled: is it the label-budget sweep?"
        )
    out = {}
    for row in group_rows(sweep, [METRIC]):
        where = dict(zip(keys, row["values"], strict=True))
        if row[METRIC] is None:
            continue
        mean, std = row[METRIC]
        out[(str(where[method]), int(where["data.num_labeled"]))] = (
            1.0 - mean,
            std or 0.0,
            row["runs"] - row["pruned"] - row["failed"],
        )
    return out


def table(errors: dict[tuple[str, int], tuple[float, float, int]]) -> str:
    lines = [
        "| labels | supervised: test error | SSGAN: test error | SSGAN / supervised | seeds |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for labels in sorted({labels for _, labels in errors}):
        cells, means = [], {}
        for mode in MODES:
            mean, std, _ = errors.get((mode, labels), (float("nan"), 0.0, 0))
            means[mode] = mean
            cells.append(f"{100 * mean:.1f}% ± {100 * std:.1f}")
        seeds = errors.get(("ssgan", labels), (0, 0, 0))[2]
        ratio = means["ssgan"] / means["supervised"]
        lines.append(f"| {labels} | {cells[0]} | {cells[1]} | {ratio:.2f} | {seeds} |")
    return "\n".join(lines)


def finished_runs(sweep: Sweep) -> list[dict]:
    """Finished runs as {run_id, mode, labels, seed, error, steps}."""
    out = []
    for run in sweep.runs:
        if run.outcome != "finished" or METRIC not in run.metrics:
            continue
        params = run.params
        steps = int(params.get("train.epochs", 0)) * int(params.get("train.steps_per_epoch", 0))
        out.append(
            {
                "run_id": run.run_id,
                "mode": params.get("method.name", params.get("train.mode")),
                "labels": int(params["data.num_labeled"]),
                "seed": int(params.get("train.seed", 0)),
                "error": 1.0 - run.metrics[METRIC],
                "steps": steps,
            }
        )
    return sorted(out, key=lambda r: (r["labels"], r["mode"], r["seed"]))


def per_seed_ratios(runs: list[dict], labels: int) -> dict[int, float]:
    """SSGAN's test error over the baseline's, for each seed both modes finished."""
    error = {(r["mode"], r["seed"]): r["error"] for r in runs if r["labels"] == labels}
    seeds = sorted({seed for mode, seed in error if mode == "ssgan"}
                   & {seed for mode, seed in error if mode == "supervised"})  # fmt: skip
    return {s: error[("ssgan", s)] / max(error[("supervised", s)], 1e-12) for s in seeds}


def curve(store: TrackingStore, run_id: str) -> list[tuple[int, float]]:
    """Validation accuracy against step for one run."""
    points = metric_history(store, run_id, "val/accuracy")
    return sorted((int(m.step), float(m.value)) for m in points)


def early_accuracy(curve: list[tuple[int, float]], total_steps: int) -> float:
    """Validation accuracy at the first evaluation at or after 20 % of the steps."""
    later = [value for step, value in curve if step >= EARLY_FRACTION * total_steps]
    return later[0] if later else math.nan


def band_goal(runs: list[dict]) -> str:
    """Whether the supervised baseline lands in SVHN's band on every seed."""
    labels, low, high = SUPERVISED_BAND
    errors = {
        r["seed"]: r["error"] for r in runs if r["mode"] == "supervised" and r["labels"] == labels
    }
    if not errors:
        return f"- supervised test error at {labels} labels: no finished run"
    met = all(low <= e <= high for e in errors.values())
    shown = ", ".join(f"seed {s}: {100 * e:.1f}%" for s, e in sorted(errors.items()))
    return (
        f"- supervised test error at {labels} labels within SVHN's band, {100 * low:.0f}–"
        f"{100 * high:.0f}%, on every seed: **{'met' if met else 'not met'}** ({shown})"
    )


def goals(runs: list[dict], curves: dict[str, list[tuple[int, float]]]) -> str:
    """Each goal as met or not met, with the measured figures."""
    lines = [band_goal(runs)]
    for labels, bound in RATIO_GOALS.items():
        ratios = per_seed_ratios(runs, labels)
        if not ratios:
            lines.append(f"- {labels} labels: no pair of finished runs")
            continue
        met = all(r <= bound for r in ratios.values())
        shown = ", ".join(f"seed {s}: {r:.2f}" for s, r in ratios.items())
        lines.append(
            f"- SSGAN / supervised test error ≤ {bound} at {labels} labels on every seed: "
            f"**{'met' if met else 'not met'}** ({shown})"
        )
    early = {
        (r["labels"], r["seed"]): early_accuracy(curves.get(r["run_id"], []), r["steps"])
        for r in runs
        if r["mode"] == "ssgan"
    }
    if early and not any(math.isnan(v) for v in early.values()):
        met = all(value >= EARLY_ACCURACY for value in early.values())
        shown = ", ".join(f"{k[0]} labels seed {k[1]}: {100 * v:.1f}%" for k, v in early.items())
        lines.append(
            f"- every SSGAN seed ≥ {100 * EARLY_ACCURACY:.0f}% validation accuracy after the "
            f"first {100 * EARLY_FRACTION:.0f}% of its steps: **{'met' if met else 'not met'}** "
            f"({shown})"
        )
    else:
        lines.append("- SSGAN validation accuracy after 20% of the steps: no learning curves")
    return "\n".join(lines)


def provenance(store: TrackingStore, sweep: Sweep) -> str:
    """When the study ran, on which data and code, and the machine this summary was
    written on (the study's README says to summarize on the machine that ran it)."""
    info, tags = sweep.parent.info, sweep.parent.data.tags
    started = dt.datetime.fromtimestamp(info.start_time / 1000, dt.UTC) if info.start_time else None
    fingerprints = sorted(
        get_run(store, r.run_id).data.tags.get("ssgan.data_fingerprint", "?").split(":")[0]
        for r in sweep.runs[:1]
    )  # one run says it: every run of the study reads the same data set
    cpu, cores = host.cpu().describe(), os.cpu_count()
    return "\n".join([
        f"- started: {started:%Y-%m-%d %H:%M} UTC" if started else "- started: unknown",
        f"- machine: {cpu}, {cores} cores (where this summary was written)",
        f"- code: commit {tags.get('mlflow.source.git.commit', '')[:10] or UNRECORDED}",
        f"- data: {', '.join(fingerprints)}",
    ])  # fmt: skip


UNRECORDED = "not recorded (run from a snapshot without .git: the study's README names it)"


def wall_minutes(sweep: Sweep) -> float | None:
    """The sweep parent run's start to end: how long the study took."""
    info = sweep.parent.info
    if not info.start_time or not info.end_time:
        return None
    return (info.end_time - info.start_time) / 60_000.0


def plot(errors: dict[tuple[str, int], tuple[float, float, int]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    budgets = sorted({labels for _, labels in errors})
    for mode in MODES:
        colour, name = COLOURS[mode]
        points = [(b, *errors[(mode, b)][:2]) for b in budgets if (mode, b) in errors]
        if not points:
            continue
        xs, means, stds = zip(*points, strict=True)
        ax.errorbar(xs, [100 * m for m in means], yerr=[100 * s for s in stds], marker="o",
                    capsize=4, color=colour, label=name)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("labelled images")
    ax.set_ylabel("test error (%)")
    ax.set_title("Label budget: synthetic digits, mean ± std over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(runs: list[dict], curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """Validation accuracy against step: one panel per label budget, both modes, every seed."""
    budgets = sorted({r["labels"] for r in runs})
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.4), squeeze=False)
    for ax, labels in zip(axes[0], budgets, strict=True):
        for mode in MODES:
            colour, name = COLOURS[mode]
            chosen = [r for r in runs if r["labels"] == labels and r["mode"] == mode]
            for index, run in enumerate(chosen):
                if not curves.get(run["run_id"]):
                    continue
                steps, values = zip(*curves[run["run_id"]], strict=True)
                ax.plot(steps, [100 * v for v in values], marker="o", markersize=3,
                        color=colour, alpha=0.85, label=name if index == 0 else None)  # fmt: skip
        ax.set_title(f"{labels} labels")
        ax.set_xlabel("step")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy (%)")
    axes[0][0].legend(loc="lower right")
    fig.suptitle("Learning curves, one line per seed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize_study(store: TrackingStore, args: argparse.Namespace) -> None:
    parent = args.parent
    if parent is None:
        newest = newest_parent_run(store, kind="grid")
        if newest is None:
            raise UserError(
                f"no sweep in experiment '{store.experiment}' at {store.uri}: "
                "run experiments/label_budget/run.sh first"
            )
        parent = newest.info.run_id
    sweep = load_sweep(store, parent)
    errors = errors_by_budget(sweep)
    report = write_report(store, parent, Path(args.report), metrics=[METRIC])
    runs = finished_runs(sweep)
    curves = {r["run_id"]: curve(store, r["run_id"]) for r in runs}
    markdown, met, minutes = table(errors), goals(runs, curves), wall_minutes(sweep)
    took = f" The sweep took {minutes:.0f} minutes." if minutes is not None else ""
    plot(errors, Path(args.plot))
    plot_curves(runs, curves, Path(args.curves))
    Path(args.results).write_text(
        f"Sweep parent run `{parent}`, {len(sweep.runs)} runs.{took}\n\n"
        f"{provenance(store, sweep)}\n\n{markdown}\n\nGoals:\n\n{met}\n"
    )
    print(f"{markdown}\n\n{met}\n{took.strip()}")
    print(f"\nplots: {args.plot}, {args.curves}\ntable: {args.results}\nreport: {report}")


# -- the ablation ---------------------------------------------------------------------------


def ablation_table(store: TrackingStore) -> str:
    runs = runs_dataframe(store, "attributes.status = 'FINISHED'")
    if runs.empty:
        raise UserError(
            f"no finished runs in experiment '{store.experiment}' at {store.uri}: "
            "run experiments/label_budget/ablation.sh first"
        )
    runs = runs.sort_values("start_time").groupby("tags.mlflow.runName").tail(1)
    lines = [
        "| run | d / g width | batch | pool | val acc. after 20 % | at 70 % | final | test error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, title in ABLATION.items():
        chosen = runs[runs["tags.mlflow.runName"] == name]
        if chosen.empty:
            lines.append(f"| {title} | | | | | | | not run |")
            continue
        row = chosen.iloc[0]
        total = int(row["params.train.epochs"]) * int(row["params.train.steps_per_epoch"])
        points = curve(store, row["run_id"])
        late = [v for s, v in points if s >= 0.7 * total]
        pool = int(row["params.data.train_size"]) - int(row["params.data.val_size"])
        cells = [
            title,
            f"{row['params.model.d_size_mult']} / {row['params.model.g_size_mult']}",
            row["params.data.batch_size"],
            f"{pool:,}",
            f"{100 * early_accuracy(points, total):.1f}%",
            f"{100 * late[0]:.1f}%" if late else "",
            f"{100 * points[-1][1]:.1f}%" if points else "",
            f"{100 * (1 - row['metrics.best/test_accuracy']):.1f}%",
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ablation", action="store_true", help="summarise ablation.sh's runs")
    parser.add_argument("--experiment", default=None)
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
    )
    parser.add_argument("--parent", default=None, help="the sweep's parent run (default: newest)")
    parser.add_argument("--plot", default=str(REPO / "docs" / "images" / "label_budget.png"))
    parser.add_argument(
        "--curves", default=str(REPO / "docs" / "images" / "label_budget_curves.png")
    )
    parser.add_argument("--results", default=str(HERE / "results.md"))
    parser.add_argument("--ablation-results", default=str(HERE / "ablation.md"))
    parser.add_argument("--report", default=str(HERE / "report"), help="the sweep report's folder")
    parser.add_argument("--out", default=None, help="write every table and figure here instead")
    args = parser.parse_args()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        args.plot, args.curves = out / "label_budget.png", out / "label_budget_curves.png"
        args.results, args.ablation_results = out / "results.md", out / "ablation.md"
        args.report = out / "report"
    default = "label_budget_ablation" if args.ablation else "label_budget"
    store = TrackingStore(
        TrackingConfig(uri=args.tracking_uri, experiment=args.experiment or default)
    )
    with user_errors():
        if not args.ablation:
            summarize_study(store, args)
            return
        markdown = ablation_table(store)
    Path(args.ablation_results).write_text(markdown + "\n")
    print(f"{markdown}\n\ntable: {args.ablation_results}")


if __name__ == "__main__":
    main()
