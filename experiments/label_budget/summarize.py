"""Turn the label-budget sweep's MLflow runs into a markdown table and a plot.

    python experiments/label_budget/summarize.py [--experiment label_budget] [--sweep ID]

Test error = 1 - best/test_accuracy: the test accuracy of the epoch chosen on the
validation split (the test set is never used for choices). Mean ± sample std over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ssgan.tracking import runs_dataframe  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def collect(experiment: str, uri: str, sweep: str | None):
    tracking = OmegaConf.create({"uri": uri, "experiment": experiment, "artifact_root": ""})
    runs = runs_dataframe(tracking, "attributes.status = 'FINISHED'")
    if runs.empty:
        raise SystemExit(f"error: no finished runs in experiment '{experiment}' at {uri}")
    if sweep is None:  # the newest sweep
        sweep = runs.sort_values("start_time")["tags.ssgan.sweep_id"].dropna().iloc[-1]
    runs = runs[runs["tags.ssgan.sweep_id"] == sweep]
    runs = runs.assign(
        error=1.0 - runs["metrics.best/test_accuracy"],
        labels=runs["params.data.num_labeled"].astype(int),
        mode=runs["params.train.mode"],
    )
    return runs, sweep


def table(runs) -> str:
    lines = [
        "| labels | supervised: test error | SSGAN: test error | SSGAN / supervised | seeds |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for labels in sorted(runs["labels"].unique()):
        cells, means = [], {}
        for mode in ("supervised", "ssgan"):
            errors = runs[(runs["labels"] == labels) & (runs["mode"] == mode)]["error"].to_numpy()
            means[mode] = errors.mean() if len(errors) else float("nan")
            std = errors.std(ddof=1) if len(errors) > 1 else 0.0
            cells.append(f"{100 * means[mode]:.1f}% ± {100 * std:.1f}")
        seeds = len(runs[runs["labels"] == labels]) // 2
        ratio = means["ssgan"] / means["supervised"]
        lines.append(f"| {labels} | {cells[0]} | {cells[1]} | {ratio:.2f} | {seeds} |")
    return "\n".join(lines)


def plot(runs, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for mode, colour, name in (
        ("supervised", "#dd8452", "supervised baseline"),
        ("ssgan", "#4c72b0", "SSGAN (feature matching)"),
    ):
        subset = runs[runs["mode"] == mode].groupby("labels")["error"]
        means, stds = subset.mean(), subset.std(ddof=1).fillna(0.0)
        ax.errorbar(
            means.index,
            100 * means,
            yerr=100 * stds,
            marker="o",
            capsize=4,
            color=colour,
            label=name,
        )
    ax.set_xscale("log")
    ax.set_xticks(sorted(runs["labels"].unique()))
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
    parser.add_argument("--sweep", default=None, help="ssgan.sweep_id tag (default: newest)")
    parser.add_argument("--plot", default=str(REPO / "docs" / "images" / "label_budget.png"))
    args = parser.parse_args()
    runs, sweep = collect(args.experiment, args.tracking_uri, args.sweep)
    markdown = table(runs)
    plot(runs, Path(args.plot))
    (HERE / "results.md").write_text(f"Sweep `{sweep}`, {len(runs)} runs.\n\n{markdown}\n")
    print(markdown)
    print(f"\nplot: {args.plot}\ntable: {HERE / 'results.md'}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
