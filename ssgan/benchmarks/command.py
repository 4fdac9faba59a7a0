"""The ``python -m ssgan.bench`` command: its options, which benchmark they select, and the
results printed as a table of figures or as JSON."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from ssgan.benchmarks.machine import describe_machine
from ssgan.benchmarks.serving import bench_serve
from ssgan.benchmarks.training import BENCH_DATA, SMOKE_STEP_FACTOR, bench_train_widths
from ssgan.cli import compose_config
from ssgan.config import TrainAppConfig, typed
from ssgan.config_checks import validate_train_config
from ssgan.errors import UserError


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(
        prog="python -m ssgan.bench",
        description="Benchmarks that print figures: the training loop and the serving signature.",
    )
    options.add_argument("what", choices=["train", "serve"])
    options.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.precision=bf16")
    options.add_argument("--steps", type=int, default=40,
                         help=f"timed steps per round at default widths (train; smoke widths: "
                              f"{SMOKE_STEP_FACTOR}x)")  # fmt: skip
    options.add_argument("--rounds", type=int, default=4, help="alternating rounds (train)")
    options.add_argument("--warmup", type=int, default=10, help="untimed steps first (train)")
    options.add_argument("--widths", default="default,smoke",
                         help="comma-separated: default (the config's), smoke (train)")  # fmt: skip
    options.add_argument("--requests", type=int, default=200,
                         help="single-image requests (serve)")  # fmt: skip
    options.add_argument("--json", action="store_true", help="print JSON")
    return options


@dataclass(frozen=True)
class BenchOptions:
    """Which benchmark to run (``what``: train or serve), on which config ``overrides``,
    for how long, and whether to print JSON."""

    what: str
    overrides: tuple[str, ...] = ()
    steps: int = 40
    rounds: int = 4
    warmup: int = 10
    widths: str = "default,smoke"
    requests: int = 200
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchOptions:
        """The options :func:`parser` parsed."""
        return cls(what=args.what, overrides=tuple(args.overrides), steps=args.steps,
                   rounds=args.rounds, warmup=args.warmup, widths=args.widths,
                   requests=args.requests, json=args.json)  # fmt: skip


def run_benchmark(options: BenchOptions) -> dict[str, Any]:
    """The figures of the benchmark ``options`` select, with the machine they were measured
    on (under ``machine`` in JSON, first in the table)."""
    widths = [w for w in options.widths.split(",") if w]
    if not widths or set(widths) - {"default", "smoke"}:
        raise UserError(f"--widths={options.widths}: allowed a comma-separated list of "
                        f"default, smoke")  # fmt: skip
    overrides = list(options.overrides)
    if options.what == "train":
        results = bench_train_widths(
            overrides, widths, options.steps, options.warmup, options.rounds
        )
    else:
        cfg = compose_config("config", [*BENCH_DATA, *overrides])
        validate_train_config(cfg)
        settings = typed(cfg, TrainAppConfig)
        results = bench_serve(settings.model, settings.train.precision, options.requests)
    machine = describe_machine()
    return {"machine": machine, **results} if options.json else {**machine, **results}


def print_results(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    columns = [key for key, value in results.items() if isinstance(value, dict)]
    for key, value in results.items():
        if not isinstance(value, dict):
            print(f"{key:40s} {_shown(value)}")
    if columns:
        # Each column as wide as its widest figure, with two spaces between columns.
        cells = {c: {k: _shown(v) for k, v in results[c].items()} for c in columns}
        wide = {c: 2 + max(len(c), *map(len, cells[c].values())) for c in columns}
        print(f"\n{'widths':40s}" + "".join(f"{c:>{wide[c]}s}" for c in columns))
        for key in results[columns[0]]:
            row = (f"{cells[c].get(key, 'None'):>{wide[c]}s}" for c in columns)
            print(f"{key:40s}" + "".join(row))


def _shown(value: Any) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)
