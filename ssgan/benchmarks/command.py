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
from ssgan.method_config import METHOD_SCHEMAS


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
    options.add_argument("--methods", default="",
                         help="comma-separated method names, or all: each benchmarked side "
                              "by side (train; default: the config's method)")  # fmt: skip
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
    methods: str = ""  # comma-separated, or "all"; "" = the config's method
    requests: int = 200
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchOptions:
        """The options :func:`parser` parsed."""
        return cls(what=args.what, overrides=tuple(args.overrides), steps=args.steps,
                   rounds=args.rounds, warmup=args.warmup, widths=args.widths,
                   methods=args.methods, requests=args.requests, json=args.json)  # fmt: skip


def run_benchmark(options: BenchOptions) -> dict[str, Any]:
    """The figures of the benchmark ``options`` select, with the machine they were measured
    on (under ``machine`` in JSON, first in the table)."""
    widths = [w for w in options.widths.split(",") if w]
    if not widths or set(widths) - {"default", "smoke"}:
        raise UserError(f"--widths={options.widths}: allowed a comma-separated list of "
                        f"default, smoke")  # fmt: skip
    overrides = list(options.overrides)
    methods = chosen_methods(options.methods, overrides)
    if methods and options.what != "train":
        raise UserError(f"--methods={options.methods}: only python -m ssgan.bench train "
                        f"benchmarks methods")  # fmt: skip
    if options.what == "train":
        results = bench_train_widths(
            overrides, widths, options.steps, options.warmup, options.rounds, methods
        )
    else:
        cfg = compose_config("config", [*BENCH_DATA, *overrides])
        validate_train_config(cfg)
        settings = typed(cfg, TrainAppConfig)
        results = bench_serve(settings.model, settings.train.precision, options.requests)
    machine = describe_machine()
    return {"machine": machine, **results} if options.json else {**machine, **results}


def chosen_methods(methods: str, overrides: list[str]) -> list[str] | None:
    """The method names ``--methods`` lists (``all``: every registered method), in its
    order; None without it. Refuses an unknown name, and a ``method=`` override beside it."""
    if not methods:
        return None
    names = list(METHOD_SCHEMAS) if methods == "all" else [m for m in methods.split(",") if m]
    unknown = [name for name in names if name not in METHOD_SCHEMAS]
    if unknown or not names:
        raise UserError(f"--methods={methods}: unknown method {', '.join(unknown) or '(none)'}"
                        f"; allowed: all, or a comma-separated list of "
                        f"{', '.join(METHOD_SCHEMAS)}")  # fmt: skip
    picked = [o for o in overrides if o.split("=")[0].lstrip("+~") == "method"]
    if picked:
        raise UserError(f"{picked[0]}: --methods picks the methods; leave the override out")
    return list(dict.fromkeys(names))


def print_results(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    columns = [key for key, value in results.items() if isinstance(value, dict)]
    for key, value in results.items():
        if not isinstance(value, dict):
            print(f"{key:40s} {_shown(value)}")
    by_method = [c for c in columns if all(isinstance(v, dict) for v in results[c].values())]
    for width in by_method:  # --methods: a table per width, a column per method
        _print_table(f"{width} widths, methods", results[width])
    if columns and not by_method:
        _print_table("widths", {c: results[c] for c in columns})


def _print_table(title: str, columns: dict[str, dict[str, Any]]) -> None:
    """A column of figures per key of ``columns``, a row per figure."""
    # Each column as wide as its widest figure, with two spaces between columns.
    cells = {c: {k: _shown(v) for k, v in figures.items()} for c, figures in columns.items()}
    wide = {c: 2 + max(len(c), *map(len, cells[c].values())) for c in columns}
    print(f"\n{title:40s}" + "".join(f"{c:>{wide[c]}s}" for c in columns))
    for key in next(iter(columns.values())):
        row = (f"{cells[c].get(key, 'None'):>{wide[c]}s}" for c in columns)
        print(f"{key:40s}" + "".join(row))


def _shown(value: Any) -> str:
    return f"{value:,.3f}" if isinstance(value, float) else str(value)
