"""The search a ``python -m ssgan.tune`` command line describes, checked before any write.

The space and budget come from ``conf/search/``; every other override is applied to
every trial (``experiment=smoke``, ``data=svhn``…). ``hydra/launcher=…`` and
``hydra.launcher.*`` choose how ``search.workers`` processes are started.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig

from ssgan.cli import check_overrides, compose_config, refuse_control_characters
from ssgan.config import SearchConfig, TrackingConfig, TuneAppConfig, typed
from ssgan.config_checks import validate_train_config
from ssgan.errors import ConfigError, first_line
from ssgan.job_context import NO_JOB, JobContext
from ssgan.sweeps import space as space_lib
from ssgan.sweeps.storage import storage_location
from ssgan.tracking.store import TrackingStore


@dataclass
class Plan:
    """A checked search: nothing has been written when one exists."""

    search: SearchConfig
    base: DictConfig  # the composed training config every trial starts from
    base_overrides: list[str]
    params: list[space_lib.Param]
    first_trials: list[tuple[dict[str, Any], str]]  # (values, role) evaluated first
    study_name: str
    storage: str  # a journal file's path or an RDB URL
    command: str
    launcher: list[str] = field(default_factory=list)  # hydra/launcher overrides, if any
    job: JobContext = NO_JOB  # the launcher's job this worker runs as, if any

    @property
    def lease_s(self) -> float:
        """How long a dead worker's trial stays taken (the run lease's period)."""
        return self.tracking.lease_s

    @cached_property
    def tracking(self) -> TrackingConfig:
        """The tracking section every trial records into."""
        return typed(self.base.tracking, TrackingConfig)

    @cached_property
    def store(self) -> TrackingStore:
        """The tracking store of the parent run and the trials (opened when first used)."""
        return TrackingStore(self.tracking)


def split_argv(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(search config overrides, every trial's training overrides, launcher overrides)."""
    search, training, launcher = [], [], []
    for arg in argv:
        if arg in ("-m", "--multirun"):
            raise ConfigError("a search runs its own trials: drop -m (use search.space to sweep)")
        if arg.startswith("-"):
            raise ConfigError(f"unknown option {arg!r}: ssgan.tune takes overrides only (--help)")
        key = arg.lstrip("+~").split("=", 1)[0]
        if key == "hydra/launcher" or key.startswith("hydra.launcher."):
            launcher.append(arg)
        elif key == "search" or key.startswith("search."):
            search.append(arg)
        else:
            training.append(arg)
    return search, training, launcher


def _refuse_sweeps(base_overrides: list[str]) -> None:
    try:
        parsed = OverridesParser.create().parse_overrides(base_overrides)
    except HydraException as err:
        raise ConfigError(f"cannot parse overrides: {first_line(err)}") from err
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(
                f"override '{override.input_line}': trials take one value per key; "
                "search over a key with search.space instead"
            )


def prepare(argv: list[str]) -> Plan:
    """Compose and check everything; raise ConfigError (one line) before any write."""
    search_overrides, base_overrides, launcher = split_argv(argv)
    refuse_control_characters(argv)
    _refuse_sweeps(base_overrides)
    if launcher:  # a launcher or launcher key Hydra does not know: one line, now
        check_overrides("tune_workers", launcher, lambda cfg: None)
    composed = compose_config("tune", search_overrides)
    space_lib.check_search(composed.search)
    search = typed(composed, TuneAppConfig).search
    check_overrides("config", base_overrides, validate_train_config)
    base = compose_config("config", base_overrides)
    if base.resume:
        raise ConfigError("resume= is not for searches: rerun the same ssgan.tune command")
    params = space_lib.parse_space(search.space)
    space_lib.check_against(params, base)
    first: list[tuple[dict[str, Any], str]] = []
    if search.baseline:
        first.append((space_lib.base_values(params, base), "baseline"))
    first += [(values, "enqueued") for values in space_lib.enqueued_values(search, params)]
    name = space_lib.study_name(search, base_overrides)
    return Plan(
        search=search,
        base=base,
        base_overrides=base_overrides,
        params=params,
        first_trials=first,
        study_name=name,
        storage=storage_location(search, base.tracking.uri, name),
        command="python -m ssgan.tune " + shlex.join(argv),
        launcher=launcher,
    )
