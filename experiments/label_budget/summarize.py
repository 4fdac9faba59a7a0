"""Turn the label-budget sweep into its table and plot, through the sweep report.

    python experiments/label_budget/summarize.py [--parent RUN_ID] [--experiment label_budget]

The sweep is one MLflow parent run (the newest grid sweep of the experiment unless
``--parent`` names one). ``ssgan.report`` groups its runs by the swept settings with the
seeds pooled; this script writes the generic report (``report/``, also logged on the
parent run) and, from the same grouped numbers, the study's own view: test error per
label budget, SSGAN against the supervised baseline.

Test error = 1 - best/test_accuracy: the test accuracy of the epoch chosen on the
validation split (the test set is never used for choices). Mean ± sample std over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ssgan.cli import user_errors  # noqa: E402
from ssgan.errors import UserError  # noqa: E402
from ssgan.report import Sweep, group_rows, load_sweep, write_report  # noqa: E402
from ssgan.tracking import newest_parent_run  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
METRIC = "best/test_accuracy"
MODES = ("supervised", "ssgan")


def errors_by_budget(sweep: Sweep) -> dict[tuple[str, int], tuple[float, float, int]]:
    """{(mode, labels): (mean test error, std, finished runs)} from the report's rows."""
    keys = [k for k in sweep.swept if k not in sweep.pooled]
    if set(keys) != {"train.mode", "data.num_labeled"}:
        raise UserError(
            f"run {sweep.parent.info.run_id} swept {', '.join(keys) or 'nothing'} (seeds "
            "pooled), not train.mode and data.num_labeled: is it the label-budget sweep?"
        )
    out = {}
    for row in group_rows(sweep, [METRIC]):
        where = dict(zip(keys, row["values"], strict=True))
        if row[METRIC] is None:
            continue
        mean, std = row[METRIC]
        out[(str(where["train.mode"]), int(where["data.num_labeled"]))] = (
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


def plot(errors: dict[tuple[str, int], tuple[float, float, int]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    budgets = sorted({labels for _, labels in errors})
    for mode, colour, name in (
        ("supervised", "#dd8452", "supervised baseline"),
        ("ssgan", "#4c72b0", "SSGAN (feature matching)"),
    ):
        points = [(b, *errors[(mode, b)][:2]) for b in budgets if (mode, b) in errors]
        if not points:
            continue
        xs, means, stds = zip(*points, strict=True)
        ax.errorbar(
            xs,
            [100 * m for m in means],
            yerr=[100 * s for s in stds],
            marker="o",
            capsize=4,
            color=colour,
            label=name,
        )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default="label_budget")
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--parent", default=None, help="the sweep's parent run (default: newest)")
    parser.add_argument("--plot", default=str(REPO / "docs" / "images" / "label_budget.png"))
    parser.add_argument("--results", default=str(HERE / "results.md"))
    parser.add_argument("--report", default=str(HERE / "report"), help="the sweep report's folder")
    args = parser.parse_args()
    tracking = OmegaConf.create(
        {"uri": args.tracking_uri, "experiment": args.experiment, "artifact_root": ""}
    )
    with user_errors():
        parent = args.parent
        if parent is None:
            newest = newest_parent_run(tracking, kind="grid")
            if newest is None:
                raise UserError(
                    f"no sweep in experiment '{args.experiment}' at {args.tracking_uri}: "
                    "run experiments/label_budget/run.sh first"
                )
            parent = newest.info.run_id
        sweep = load_sweep(tracking, parent)
        errors = errors_by_budget(sweep)
        report = write_report(tracking, parent, Path(args.report), metrics=[METRIC])
    markdown = table(errors)
    plot(errors, Path(args.plot))
    Path(args.results).write_text(
        f"Sweep parent run `{parent}`, {len(sweep.runs)} runs.\n\n{markdown}\n"
    )
    print(markdown)
    print(f"\nplot: {args.plot}\ntable: {args.results}\nreport: {report}")


if __name__ == "__main__":
    main()
