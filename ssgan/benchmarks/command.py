"""The ``python -m ssgan.bench`` command: its options (the ``bench`` config section and the
training overrides), which benchmark they select, and the results printed as a table of
figures or as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from ssgan.bench_config import BenchConfig, ServeBenchConfig, TrainBenchConfig
from ssgan.cli import compose_config, overrides_only
from ssgan.command_checks import chosen_methods, chosen_widths
from ssgan.config import TrainAppConfig, typed
from ssgan.config_checks import validate_train_config
from ssgan.errors import ConfigError
from ssgan.method_config import METHOD_SCHEMAS

# The flags the command took before it was a Hydra app, and their key=value forms.
OLD_FLAGS = {
    "--steps": "bench.steps=<n>",
    "--rounds": "bench.rounds=<n>",
    "--warmup": "bench.warmup=<n>",
    "--widths": "bench.widths=[default,smoke]",
    "--methods": "bench.methods=[supervised,fixmatch] (or [all])",
    "--requests": "bench=serve bench.requests=<n>",
    "--json": "bench.json=true",
}


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def is_bench_key(override: str) -> bool:
    """Whether ``override`` sets the bench's own keys (``bench=serve``, ``bench.json=true``)
    rather than the training config's."""
    return _key(override) == "bench" or _key(override).startswith("bench.")


def with_first_method(argv: list[str]) -> list[str]:
    """``argv`` with ``method=<the first of bench.methods>`` added, when it lists methods:
    the config Hydra composes is then the first method's, so a ``method.<key>`` override the
    listed methods share (``method.translate=2``) composes. Refuses a ``method=`` override
    beside ``bench.methods``, which picks the methods."""
    overrides = overrides_only(argv)
    listed = [o for o in overrides if _key(o) == "bench.methods"]
    if not listed:
        return argv
    picked = [o for o in overrides if _key(o) == "method"]
    if picked:
        raise ConfigError(f"{picked[0]}: bench.methods picks the methods; leave the override out")
    try:
        value = OverridesParser.create().parse_override(listed[-1]).value()
    except HydraException:  # Hydra's own check says what is wrong with it
        return argv
    names = [str(name) for name in (value if isinstance(value, list) else [value])]
    if names == ["all"]:
        names = list(METHOD_SCHEMAS)
    if not names or names[0] not in METHOD_SCHEMAS:
        return argv  # left to the bench's own check, which names what is wrong
    # Beside bench.methods: Hydra takes its overrides as one run of arguments.
    at = argv.index(listed[-1])
    return [*argv[:at], f"method={names[0]}", *argv[at:]]


@dataclass(frozen=True)
class BenchOptions:
    """Which benchmark to run and its knobs (``bench``: a TrainBenchConfig or a
    ServeBenchConfig), on which training config ``overrides``."""

    bench: BenchConfig
    overrides: tuple[str, ...] = ()  # training overrides, as given on the command line

    @classmethod
    def from_job(cls, bench: BenchConfig, job_overrides: tuple[str, ...]) -> BenchOptions:
        """The options of a Hydra job: its overrides less the bench's own keys, and less the
        ``method=`` that :func:`with_first_method` added beside ``bench.methods``."""
        methods = chosen_methods(bench)
        overrides = [o for o in job_overrides if not is_bench_key(o)]
        if methods:
            overrides = [o for o in overrides if _key(o) != "method"]
        return cls(bench, tuple(overrides))


def run_benchmark(options: BenchOptions) -> dict[str, Any]:
    """The figures of the benchmark ``options`` select, with the machine they were measured
    on (under ``machine`` in JSON, first in the table)."""
    # Imported here: they load TensorFlow, and the entry point checks the overrides with
    # this module's helpers before TensorFlow starts (start_tensorflow() runs before this).
    from ssgan.benchmarks.machine import describe_machine
    from ssgan.benchmarks.serving import bench_serve
    from ssgan.benchmarks.training import BENCH_DATA, bench_train_widths

    bench, overrides = options.bench, list(options.overrides)
    if isinstance(bench, TrainBenchConfig):
        results = bench_train_widths(
            overrides,
            chosen_widths(bench),
            bench.steps,
            bench.warmup,
            bench.rounds,
            chosen_methods(bench),
        )
    elif isinstance(bench, ServeBenchConfig):
        cfg = compose_config("config", [*BENCH_DATA, *overrides])
        validate_train_config(cfg)
        settings = typed(cfg, TrainAppConfig)
        results = bench_serve(settings.model, settings.train.precision, bench.requests)
    else:
        raise ConfigError(f"bench={bench.name} is not a benchmark: allowed train, serve")
    machine = describe_machine()
    return {"machine": machine, **results} if bench.json else {**machine, **results}


def print_results(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    columns = [key for key, value in results.items() if isinstance(value, dict)]
    for key, value in results.items():
        if not isinstance(value, dict):
            print(f"{key:40s} {_shown(value)}")
    by_method = [c for c in columns if all(isinstance(v, dict) for v in results[c].values())]
    for width in by_method:  # bench.methods: a table per width, a column per method
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
