"""The methods study's results, regenerated from the MLflow store by one command.

    python experiments/methods/summarize.py [--tracking-uri URI] [--out DIR]

Reads the FINISHED runs named ``methods-<method>-<labels>-s<seed>`` of the experiment
``methods`` (what ``run.py`` leaves) and writes ``results.md`` (per label budget and
method: test error mean ± sample std and per seed, the ratio to the supervised baseline
paired by seed, balanced error, wall-clock and FLOPs per run; which differences the seeds
support; the goals; the machine, dates, code and data) and ``methods_compute.png`` (test
error against compute, one line per method). Defaults: the repository's
experiments/methods/results.md and docs/images/methods_compute.png.

Test error = 1 - best/test_accuracy, the test accuracy of the epoch chosen on the
validation split; balanced error = 1 - test/balanced_accuracy at that epoch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from scipy import stats

from ssgan.cli import default_tracking, user_errors
from ssgan.errors import UserError
from ssgan.tracking.runs import metric_history, search_runs
from ssgan.tracking.store import TrackingStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
METHODS = ("supervised", "ssgan", "badgan", "mean_teacher", "fixmatch")
NAMES = {"supervised": "supervised", "ssgan": "SSGAN (feature matching)", "badgan": "Bad GAN",
         "mean_teacher": "Mean Teacher", "fixmatch": "FixMatch"}  # fmt: skip
# Goals at 1000 labels: SSGAN's test error at most 0.6x the baseline's, the best method's
# at most 0.4x (ratios of the mean errors; per seed shown beside them).
SSGAN_GOAL, BEST_GOAL, GOAL_LABELS = 0.6, 0.4, 1000


@dataclass
class Arm:
    """One finished run of the study."""

    method: str
    labels: int
    seed: int
    error: float
    balanced_error: float
    minutes: float
    flops: float  # the whole run's
    curve: list[tuple[float, float]] = field(default_factory=list)  # (FLOPs so far, test error)
    started: float = 0.0
    commit: str = ""
    fingerprint: str = ""
    chosen_epoch: int = 0  # the epoch the validation split chose
    epochs: int = 0
    labelled_loss: float = float("nan")  # the supervised loss term over its last log


def load_arms(store: TrackingStore) -> list[Arm]:
    runs = search_runs(store, "attributes.status = 'FINISHED'")
    arms = []
    for run in runs:
        if not (run.info.run_name or "").startswith("methods-"):
            continue
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        steps_per_epoch = int(params["train.steps_per_epoch"])
        step_flops = float(tags.get("ssgan.step_flops", "nan"))
        best_step = int(metrics["best/epoch"]) * steps_per_epoch
        balanced = dict(_history(store, run.info.run_id, "test/balanced_accuracy"))
        tests = sorted(_history(store, run.info.run_id, "test/accuracy"))
        arms.append(Arm(
            method=params["method.name"],
            labels=int(params["data.num_labeled"]),
            seed=int(params["train.seed"]),
            error=1.0 - metrics["best/test_accuracy"],
            balanced_error=1.0 - balanced.get(best_step, float("nan")),
            minutes=training_minutes(store, run.info.run_id),
            flops=step_flops * int(params["train.epochs"]) * steps_per_epoch,
            curve=[(step * step_flops, 1.0 - value) for step, value in tests],
            started=run.info.start_time / 1000.0,
            commit=tags.get("mlflow.source.git.commit", "")[:10],
            fingerprint=tags.get("ssgan.data_fingerprint", "?").split(":")[0],
            chosen_epoch=int(metrics["best/epoch"]),
            epochs=int(params["train.epochs"]),
            labelled_loss=metrics.get("train/d_supervised_loss", float("nan")),
        ))  # fmt: skip
    if not arms:
        raise UserError(
            f"no finished runs of the methods study in experiment '{store.settings.experiment}' "
            f"of {store.settings.uri}: run experiments/methods/run.py first"
        )
    return arms


def training_minutes(store: TrackingStore, run_id: str) -> float:
    """Wall-clock of the run's training: the time between its logged losses (every
    ``train.log_every`` steps), leaving out pauses (gaps over 10x the median gap: a run
    stopped and resumed later), so an interrupted run is not counted longer."""
    stamps = sorted(m.timestamp for m in metric_history(store, run_id, "train/d_loss"))
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    if not gaps:
        return float("nan")
    typical = statistics.median(gaps)
    return sum(g for g in gaps if g <= 10 * typical) / 60_000.0


def _history(store: TrackingStore, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(int(m.step), m.value) for m in metric_history(store, run_id, key)]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _mean_std(values: list[float]) -> str:
    """Mean ± sample std in percent (one value: no spread to show)."""
    if len(values) == 1:
        return _pct(values[0])
    return f"{100 * statistics.fmean(values):.1f}% ± {100 * statistics.stdev(values):.1f}"


def by_seed(arms: list[Arm], method: str, labels: int) -> dict[int, Arm]:
    return {a.seed: a for a in arms if a.method == method and a.labels == labels}


def paired_ratios(arms: list[Arm], method: str, labels: int) -> dict[int, float]:
    """The method's test error over the baseline's, seed by seed (the same seed: the same
    labelled images, validation split and initialisation)."""
    ours, base = by_seed(arms, method, labels), by_seed(arms, "supervised", labels)
    return {s: ours[s].error / base[s].error for s in sorted(ours.keys() & base.keys())}


def arms_by_method(arms: list[Arm], labels: int) -> list[tuple[str, list[Arm]]]:
    """Each method's runs at ``labels`` labels, seed by seed, in the table's order."""
    return [
        (method, [seeds[s] for s in sorted(seeds)])
        for method in METHODS
        if (seeds := by_seed(arms, method, labels))
    ]


def table(arms: list[Arm], labels: int) -> str:
    lines = [
        f"### {labels} labels",
        "",
        "| method | seeds | test error | per seed | / supervised (by seed) | balanced error "
        "| wall-clock per run | FLOPs per run |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for method, runs in arms_by_method(arms, labels):
        per_seed = ", ".join(f"s{a.seed} {_pct(a.error)}" for a in runs)
        ratios = paired_ratios(arms, method, labels)
        ratio = f"{statistics.fmean(ratios.values()):.2f}" if ratios else "–"
        if ratios and method != "supervised":
            ratio += " (" + ", ".join(f"{r:.2f}" for r in ratios.values()) + ")"
        minutes = statistics.fmean(a.minutes for a in runs)
        flops = statistics.fmean(a.flops for a in runs)
        lines.append(
            f"| {NAMES[method]} | {len(runs)} | {_mean_std([a.error for a in runs])} | {per_seed} "
            f"| {ratio} | {_mean_std([a.balanced_error for a in runs])} | {minutes:.1f} min "
            f"| {flops / 1e12:,.0f} TFLOP |"
        )
    return "\n".join(lines)


def budget(arms: list[Arm]) -> str:
    """Whether each arm was still learning when its steps ran out: the epoch the validation
    split chose, by seed, and how far the labelled images were fitted at the end."""
    lines = [
        "The epoch chosen on the validation split, by seed, out of the run's epochs: where it "
        "is the last, the arm was still improving when its budget of steps ran out, and a "
        "longer run could change its place in the table. Beside it, the supervised term of "
        "the training loss (cross-entropy on the labelled batch, after the method's "
        "perturbations) at the last logged step, mean over seeds.",
        "",
        "| method | labels | epoch chosen (by seed) | still improving at the end | labelled "
        "cross-entropy at the end |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for labels in sorted({a.labels for a in arms}, reverse=True):
        for method, runs in arms_by_method(arms, labels):
            chosen = ", ".join(f"s{a.seed} {a.chosen_epoch}/{a.epochs}" for a in runs)
            rising = sum(a.chosen_epoch == a.epochs for a in runs)
            loss = statistics.fmean(a.labelled_loss for a in runs)
            lines.append(f"| {NAMES[method]} | {labels} | {chosen} | {rising} of {len(runs)} "
                         f"| {loss:.2f} |")  # fmt: skip
    return "\n".join(lines)


def difference(arms: list[Arm], method: str, other: str, labels: int) -> str | None:
    """What the seeds say about ``method`` against ``other``: the paired difference in
    test error, its 95 % interval (t distribution over seeds) and whether it excludes 0."""
    ours, theirs = by_seed(arms, method, labels), by_seed(arms, other, labels)
    seeds = sorted(ours.keys() & theirs.keys())
    if not seeds:
        return None
    diffs = [ours[s].error - theirs[s].error for s in seeds]
    mean = statistics.fmean(diffs)
    head = f"{NAMES[method]} − {NAMES[other]} at {labels} labels: {100 * mean:+.1f} points"
    if len(seeds) < 2:
        return f"{head} (one seed: not testable)"
    half = stats.t.ppf(0.975, len(seeds) - 1) * statistics.stdev(diffs) / math.sqrt(len(seeds))
    supported = abs(mean) > half
    verdict = "supported" if supported else "not supported (the interval includes 0)"
    return (f"{head}, 95% interval ±{100 * half:.1f} over {len(seeds)} paired seeds: "
            f"{verdict}")  # fmt: skip


def significance(arms: list[Arm]) -> str:
    lines = []
    for labels in sorted({a.labels for a in arms}, reverse=True):
        for method in METHODS[1:]:
            for other in ("supervised", "ssgan"):
                if method != other and (line := difference(arms, method, other, labels)):
                    lines.append(f"- {line}")
    return "\n".join(lines)


def goals(arms: list[Arm]) -> str:
    base = by_seed(arms, "supervised", GOAL_LABELS)
    if not base:
        return f"- no supervised runs at {GOAL_LABELS} labels yet: goals not assessed"
    base_error = statistics.fmean(a.error for a in base.values())
    ratios = {
        m: statistics.fmean(a.error for a in by_seed(arms, m, GOAL_LABELS).values()) / base_error
        for m in METHODS[1:]
        if by_seed(arms, m, GOAL_LABELS)
    }
    lines = []
    if "ssgan" in ratios:
        lines.append(_goal("SSGAN", ratios["ssgan"], SSGAN_GOAL, arms, "ssgan"))
    if ratios:
        best = min(ratios, key=ratios.__getitem__)
        lines.append(_goal(f"the best method ({NAMES[best]})", ratios[best], BEST_GOAL, arms, best))
    return "\n".join(lines)


def _goal(who: str, ratio: float, goal: float, arms: list[Arm], method: str) -> str:
    per_seed = ", ".join(
        f"s{s} {r:.2f}" for s, r in paired_ratios(arms, method, GOAL_LABELS).items()
    )
    met = ratio <= goal
    verdict = "**met**" if met else f"**not met**, by {ratio - goal:.2f}"
    return (f"- {who}: test error ≤ {goal}× supervised at {GOAL_LABELS} labels: {ratio:.2f}× "
            f"({per_seed}): {verdict}")  # fmt: skip


def provenance(arms: list[Arm]) -> str:
    first = dt.datetime.fromtimestamp(min(a.started for a in arms), dt.UTC)
    commits = sorted({a.commit or "not recorded" for a in arms})
    data = sorted({a.fingerprint for a in arms})
    return "\n".join([
        f"- runs: {len(arms)}, the first started {first:%Y-%m-%d %H:%M} UTC",
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores (where this summary was written)",
        f"- code: commit {', '.join(commits)}",
        f"- data: {', '.join(data)}",
    ])  # fmt: skip


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    models = [ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("model name")]
    model = models[0].strip() if models else "unknown CPU"
    return model + (" with AVX-512" if " avx512f" in text else "")


def plot(arms: list[Arm], path: Path) -> None:
    """Test error against compute, one line per method: the mean over seeds at each
    evaluation (per epoch), at the larger label budget."""
    labels = max(a.labels for a in arms)
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for method in METHODS:
        runs = list(by_seed(arms, method, labels).values())
        if not runs:
            continue
        points = min(len(r.curve) for r in runs)
        xs = [statistics.fmean(r.curve[i][0] for r in runs) for i in range(points)]
        ys = [statistics.fmean(r.curve[i][1] for r in runs) for i in range(points)]
        seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
        ax.plot(xs, [100 * y for y in ys], marker="o", label=f"{NAMES[method]} ({seeds})")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training compute (FLOPs, counted from the networks)")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"Methods on synthetic digits, {labels} labels, mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def results(arms: list[Arm]) -> str:
    budgets = sorted({a.labels for a in arms}, reverse=True)
    return "\n\n".join([
        "# Methods study: results",
        "Written by `python experiments/methods/summarize.py` from the MLflow store. Test "
        "error is the test accuracy's complement at the epoch chosen on the validation split; "
        "mean ± sample std over seeds; the ratio to supervised is taken seed by seed.",
        provenance(arms),
        *(table(arms, labels) for labels in budgets),
        "## Goals\n\n" + goals(arms),
        "## What the seeds support\n\n" + significance(arms),
        "## Budget: still learning at the end?\n\n" + budget(arms),
        "![test error against compute](../../docs/images/methods_compute.png)",
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default=None, help="default: training's store")
    parser.add_argument("--out", default=None, help="write both files here instead")
    args = parser.parse_args(argv)
    with user_errors():
        tracking = default_tracking(args.tracking_uri)
        store = TrackingStore(replace(tracking, experiment="methods"))
        arms = load_arms(store)
        out = Path(args.out) if args.out else None
        text_path = out / "results.md" if out else HERE / "results.md"
        figure = (
            out / "methods_compute.png" if out else REPO / "docs" / "images" / "methods_compute.png"
        )
        text_path.parent.mkdir(parents=True, exist_ok=True)
        text_path.write_text(results(arms))
        plot(arms, figure)
    print(f"wrote {text_path} and {figure} from {len(arms)} runs")


if __name__ == "__main__":
    main()
