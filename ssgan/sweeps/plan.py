"""The search a ``python -m ssgan.tune`` command line describes, checked before any write.

The space and budget come from ``conf/search/``; every other override is applied to
every trial (``experiment=smoke``, ``data=svhn``…), and so is a training group that the
search preset chooses in its defaults list (``search/smoke.yaml``: the smoke experiment)
unless the command line chooses that group itself. ``hydra/launcher=…`` and
``hydra.launcher.*`` choose how ``search.workers`` processes are started;
``--config-dir DIR`` adds the user's folder of configs (``search/mine.yaml``) for every
composition, the workers' and the trials' included.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig

from ssgan.cli import (
    SearchPath,
    check_overrides,
    compose_config,
    overrides_only,
    refuse_control_characters,
    search_path,
)
from ssgan.config import SearchConfig, TrackingConfig, typed
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
    config_path: SearchPath = field(default_factory=SearchPath)  # with --config-dir folders
    config_flags: list[str] = field(default_factory=list)  # --config-dir DIR (absolute)
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


_CONFIG_DIR_FLAGS = ("--config-dir", "-cd")


def config_dir_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """(``--config-dir DIR`` flags as given, the other arguments)."""
    flags: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in _CONFIG_DIR_FLAGS:
            value = next(args, None)
            if value is None:
                raise ConfigError(f"{arg} needs a folder: {arg} DIR (one with search/mine.yaml)")
            flags += [arg, value]
        elif arg.split("=", 1)[0] in _CONFIG_DIR_FLAGS and "=" in arg:
            flags.append(arg)
        else:
            rest.append(arg)
    return flags, rest


# Hydra's flags that print and return (help, config, info, shell completion).
_HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "-sc")


def hydra_flags(argv: list[str]) -> bool:
    """Whether ``argv`` asks Hydra to print something (``--cfg job``, ``--help``…)."""
    return any(a.split("=", 1)[0] in (*_HYDRA_FLAGS, "--shell-completion") for a in argv)


def check_hydra_flags(argv: list[str]) -> None:
    """``--cfg``: the config it prints composes and passes the checks (ConfigError, one
    line, if not); help, info and completion are never blocked by an override."""
    if not any(a.split("=", 1)[0] in ("--cfg", "-c") for a in argv):
        return
    flags, rest = config_dir_flags(argv)
    path, _ = search_path(flags, "tune")
    overrides = overrides_only(rest)
    refuse_control_characters(overrides)
    space_lib.check_tune_config(compose_config("tune", overrides, path))


def split_argv(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(search config overrides, every trial's training overrides, launcher overrides);
    ``--config-dir`` flags are left out (:func:`config_dir_flags`)."""
    search, training, launcher = [], [], []
    for arg in config_dir_flags(argv)[1]:
        if arg in ("-m", "--multirun"):
            raise ConfigError("a search runs its own trials: drop -m (use search.space to sweep)")
        if arg.startswith("-"):
            raise ConfigError(
                f"unknown option {arg!r}: ssgan.tune takes overrides, --config-dir DIR and "
                "Hydra's --help, --cfg, --info and -sc (--help)"
            )
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


def preset_choices(composed: DictConfig, path: SearchPath, given: list[str]) -> list[str]:
    """``group=option`` for each training group whose option the search preset chose (its
    defaults list differs from the training config's), unless ``given`` chooses it."""
    chosen = composed.hydra.runtime.choices
    defaults = compose_config("config", [], path, with_hydra=True).hydra.runtime.choices
    on_command_line = {o.lstrip("+~").split("=", 1)[0] for o in given}
    return [
        f"{group}={option}"
        for group, option in chosen.items()
        if group in defaults
        and group not in on_command_line
        and option != defaults[group]
        and not group.startswith("hydra/")
    ]


def prepare(argv: list[str]) -> Plan:
    """Compose and check everything; raise ConfigError (one line) before any write."""
    flags, _ = config_dir_flags(argv)
    search_overrides, base_overrides, launcher = split_argv(argv)
    refuse_control_characters(argv)
    path, _ = search_path(flags, "tune")
    _refuse_sweeps(base_overrides)
    if launcher:  # a launcher or launcher key Hydra does not know: one line, now
        check_overrides("tune_workers", launcher, lambda cfg: None)
    composed = compose_config("tune", search_overrides, path, with_hydra=True)
    space_lib.check_search(composed.search)
    search = typed(composed.search, SearchConfig)
    space_lib.check_sampler_installed(search.sampler)
    base_overrides = preset_choices(composed, path, base_overrides) + base_overrides
    check_overrides("config", [*flags, *base_overrides], validate_train_config)
    base = compose_config("config", base_overrides, path)
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
        config_path=path,
        config_flags=[arg for folder in path.extra for arg in ("--config-dir", folder)],
    )
