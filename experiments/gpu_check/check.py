"""Training and serving benchmarks across models, precisions, steps per call and
strategies in one process, written as a markdown table (see run.sh).

Nothing here needs a GPU: on a CPU it measures the CPU (``--tiny`` for a quick check).
Results are written after every configuration, so a run cut short keeps what it did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ssgan.runtime import start_tensorflow

start_tensorflow()  # quietly, the allocator set first, before the imports below load it

from ssgan.benchmarks.machine import describe_machine  # noqa: E402
from ssgan.benchmarks.serving import bench_serve  # noqa: E402
from ssgan.benchmarks.training import bench_train_widths  # noqa: E402
from ssgan.cli import compose_config  # noqa: E402
from ssgan.config import TrainAppConfig, typed  # noqa: E402

HERE = Path(__file__).resolve().parent

# (model, precision, steps_per_loop or None for the config's default, strategy)
TRAIN_CONFIGS = [
    (model, precision, steps_per_loop, "default")
    for model in ("tutorial", "improved_gan")
    for precision in ("fp32", "bf16")
    for steps_per_loop in (1, None)
] + [("tutorial", "fp32", None, "mirrored")]
SERVE_MODELS = ("tutorial", "improved_gan")

TINY = [
    "model.d_size_mult=4", "model.g_size_mult=4", "model.z_size=8", "data.batch_size=16",
    "data.train_size=400", "data.val_size=50", "data.test_size=50", "data.num_labeled=20",
]  # fmt: skip


def gpu_name() -> str:
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    return ", ".join(names) or "none (CPU only)"


def train_rows(entry: dict[str, Any]) -> list[str]:
    rows = []
    for width in entry["widths"]:
        r = entry[width]
        rows.append(
            f"| {r['model']} | {r['precision']} | {r['strategy']} | {r['steps_per_loop']} "
            f"| {width} (batch {r['batch_size']}) | {r['bare_step_images_per_sec']:,.0f} "
            f"| {r['full_loop_images_per_sec']:,.0f} | {r['loop_to_bare_ratio']:.3f} "
            f"| {r['host_cost_per_step_us']:,.0f} | {100 * r['logging_overhead']:.1f} % "
            f"| {100 * r['step_share_of_peak']:.0f} % |"
        )
    return rows


def serve_row(r: dict[str, Any]) -> str:
    return (
        f"| {r['model']} | {r['latency_ms_p50']:.2f} / {r['latency_ms_p99']:.2f} "
        f"| {r['signature_images_per_sec_batch64']:,.0f} "
        f"| {r['network_images_per_sec_batch64']:,.0f} "
        f"| {r['signature_to_network_ratio_batch64']:.2f} |"
    )


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# GPU check",
        "",
        f"GPU: {results['gpu']}; CPU: {machine['cpu']} ({machine['cores']} cores); "
        f"TensorFlow {machine['tensorflow']}; {results['date']}"
        + (
            "; **tiny sizes** (a check of the script, not a measurement)" if results["tiny"] else ""
        ),  # fmt: skip
        "",
        f"`{results['command']}` — training: best of {results['rounds']} alternating rounds of "
        f"{results['steps']} steps (smoke widths 5x); % of peak is the bare step's FLOP/s "
        "against a float32 2048² matmul on the same device.",
        "",
        "| model | precision | strategy | steps/call | widths | bare step img/s "
        "| full loop img/s | loop / bare | host µs/step | logging | % of peak |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in results["train"]:
        if "skipped" in entry:
            lines.append(f"| {entry['config']} | skipped: {entry['skipped']} |||||||||| |")
        else:
            lines.extend(train_rows(entry))
    lines += [
        "",
        "Serving (`python -m ssgan.bench bench=serve`, JPEG requests through `serving_default`):",
        "",
        "| model | 1 image p50 / p99 ms | signature img/s, batch 64 | network alone img/s "
        "| signature / network |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for entry in results["serve"]:
        if "skipped" in entry:
            lines.append(f"| {entry['model']} | skipped: {entry['skipped']} |||| ")
        else:
            lines.append(serve_row(entry))
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown(results))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, to check on a CPU")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="start no configuration after this many seconds")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None,
                        help="run only the first N training configurations")  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md/json go")
    args = parser.parse_args(argv)
    started = time.monotonic()
    extra = [*TINY, f"data.root={args.out / 'data'}"] if args.tiny else []
    steps, warmup, rounds, requests = (2, 1, 1, 5) if args.tiny else (40, 10, 2, 100)
    results: dict[str, Any] = {
        "machine": describe_machine(),
        "gpu": gpu_name(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tiny": args.tiny,
        "command": "experiments/gpu_check/run.sh" + (" --tiny" if args.tiny else ""),
        "steps": steps,
        "rounds": rounds,
        "train": [],
        "serve": [],
    }

    def over_budget() -> bool:
        return time.monotonic() - started > args.budget_s

    for index, (model, precision, steps_per_loop, strategy) in enumerate(TRAIN_CONFIGS):
        overrides = [f"model={model}", f"train.precision={precision}",
                     f"train.strategy={strategy}", *extra]  # fmt: skip
        if steps_per_loop is not None:
            overrides.append(f"train.steps_per_loop={steps_per_loop}")
        name = f"{model} {precision} {strategy} steps_per_loop={steps_per_loop or 'default'}"
        if args.limit is not None and index >= args.limit:
            results["train"].append({"config": name, "skipped": "--limit"})
        elif over_budget():
            results["train"].append({"config": name, "skipped": "time budget"})
        else:
            print(f"train: {name}", file=sys.stderr, flush=True)
            entry = bench_train_widths(overrides, ["default", "smoke"], steps, warmup, rounds)
            results["train"].append({"config": name, "widths": ["default", "smoke"], **entry})
        write(results, args.out)
    for model in SERVE_MODELS:
        if over_budget():
            results["serve"].append({"model": model, "skipped": "time budget"})
        else:
            print(f"serve: model={model}", file=sys.stderr, flush=True)
            cfg = typed(compose_config("config", [f"model={model}", *extra]), TrainAppConfig)
            results["serve"].append(bench_serve(cfg.model, cfg.train.precision, requests))
        write(results, args.out)
    print(markdown(results))


if __name__ == "__main__":
    main()
