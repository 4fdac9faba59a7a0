"""The checks of the commands that read runs and measure: ``ssgan.report``, ``ssgan.export``
and ``ssgan.bench`` (their keys, choices and numbers), and their required keys, before any
store is opened or any work starts."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

from ssgan.bench_config import BENCH_WIDTHS, BenchConfig, TrainBenchConfig
from ssgan.config import BenchAppConfig, ExportAppConfig, ReportAppConfig, typed
from ssgan.config_checks import TRACKING_RANGES, check_table, check_tracking_uri, check_unknown_keys
from ssgan.errors import ConfigError
from ssgan.method_config import METHOD_SCHEMAS

EXPORT_CHOICES = {"checkpoint": ("best", "last")}
# bench=train's counts: a benchmark times at least one step in one round.
BENCH_LEAST = {"steps": 1, "rounds": 1, "warmup": 0, "requests": 1}


def check_required(cfg: DictConfig, required: Mapping[str, str]) -> None:
    """One line for the first key of ``required`` (key -> an example value) left at
    ``???``. Checked when the command runs, not by ``--cfg job``, which shows the ``???``."""
    for key, example in required.items():
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key} is required: add {key}={example}")


def validate_report_config(cfg: DictConfig) -> None:
    """The report command's keys, its tracking store and its metrics."""
    check_unknown_keys(cfg, ReportAppConfig)
    check_table(cfg, {}, TRACKING_RANGES)
    check_tracking_uri(str(cfg.tracking.uri))
    if not cfg.metrics or not all(str(metric).strip() for metric in cfg.metrics):
        raise ConfigError(
            f"metrics=[{','.join(map(str, cfg.metrics))}]: name at least one metric and no "
            "empty one, e.g. metrics=[best/test_accuracy]"
        )


def validate_export_config(cfg: DictConfig) -> None:
    """The export command's keys, its checkpoint choice and its tracking store."""
    check_unknown_keys(cfg, ExportAppConfig)
    check_table(cfg, EXPORT_CHOICES, TRACKING_RANGES)
    check_tracking_uri(str(cfg.tracking.uri))
    if not OmegaConf.is_missing(cfg, "output") and not str(cfg.output).strip():
        raise ConfigError("output is empty: give the folder to create, e.g. output=exported/")


def validate_bench_config(cfg: DictConfig) -> None:
    """The bench command's keys (the training config's too) and its own knobs; the
    training config itself is checked as each benchmark composes it."""
    check_unknown_keys(cfg, BenchAppConfig)
    bench = typed(cfg, BenchAppConfig).bench
    for key, least in BENCH_LEAST.items():
        value = getattr(bench, key, least)
        if value < least:
            raise ConfigError(f"bench.{key}={value} is too small: allowed {least} or more")
    if isinstance(bench, TrainBenchConfig):
        chosen_widths(bench)
        chosen_methods(bench)


def chosen_widths(bench: TrainBenchConfig) -> list[str]:
    """The widths ``bench.widths`` lists, refused in one line when empty or unknown."""
    if not bench.widths or set(bench.widths) - set(BENCH_WIDTHS):
        raise ConfigError(
            f"bench.widths=[{','.join(bench.widths)}]: allowed a list of "
            f"{', '.join(BENCH_WIDTHS)}, e.g. bench.widths=[default]"
        )
    return list(bench.widths)


def chosen_methods(bench: BenchConfig) -> list[str] | None:
    """The method names ``bench.methods`` lists (``[all]``: every registered method), in
    its order; None without it (the config's method). Refuses an unknown name."""
    methods = list(getattr(bench, "methods", []))
    if not methods:
        return None
    names = list(METHOD_SCHEMAS) if methods == ["all"] else methods
    unknown = [name for name in names if name not in METHOD_SCHEMAS]
    if unknown:
        raise ConfigError(
            f"bench.methods=[{','.join(methods)}]: unknown method {', '.join(unknown)}; "
            f"allowed: [all], or a list of {', '.join(METHOD_SCHEMAS)}"
        )
    return list(dict.fromkeys(names))
