"""Command-line plumbing shared by the entry points: early config checks, one-line errors.

Hydra reports composition errors as several lines and a hint about HYDRA_FULL_ERROR.
``check_overrides`` composes the config itself first (every value of a sweep too), with
the search path Hydra will use (``--config-dir``, ``--config-path``, ``--config-name``,
``hydra.searchpath``), so a bad override stops before Hydra starts, before any output
directory or MLflow run exists.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from hydra import compose
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ssgan.config import REMOVED_KEYS, TrackingConfig, register_schemas, typed
from ssgan.console import echo
from ssgan.errors import ConfigError, UserError, disk_full_reason, first_line
from ssgan.hydra_help import register_help_resolver


def _config_dir() -> str:
    """conf/ as a wheel installs it (``ssgan/conf``, see pyproject.toml), else the
    checkout's top-level conf/ (editable installs, PYTHONPATH): always the tree that
    belongs to this code, never another checkout's."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return str(packaged if (packaged / "config.yaml").is_file() else here.parent / "conf")


CONFIG_DIR = _config_dir()


def program_name() -> str:
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "ssgan"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a UserError into one line on stderr and exit status 2."""
    try:
        yield
    except UserError as err:
        message = " ".join(str(err).split())
        echo(f"error: {message}", error=True)  # also into the job's log file, if any
        sys.exit(2)


@contextlib.contextmanager
def hydra_output_errors() -> Iterator[None]:
    """Around a Hydra app: Hydra writes the job's output folder (``.hydra/``, its log)
    before the task runs, and printed a traceback when it could not (a full disk, a
    read-only folder). Hydra raises instead (``HYDRA_FULL_ERROR``); such an error is one
    line naming the folder, exit status 2. Anything else is raised as before."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except OSError as err:
        if not _raised_in_hydra(err):
            raise
        # Closing a file on a full disk raises without a file name: the folder Hydra was
        # writing then (its own variable; Hydra has forgotten the job by now).
        written = _hydra_local(err, "output_dir")
        folder = Path(err.filename).parent if err.filename else Path(written or ".")
        folder = folder.parent if folder.name == ".hydra" else folder
        reason = disk_full_reason(err) or err.strerror or first_line(err)
        print(
            f"error: cannot write the job's output folder {folder} ({reason}): free space "
            "there, or point hydra.run.dir (hydra.sweep.dir with -m) at a folder with room",
            file=sys.stderr,
        )
        sys.exit(2)
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def _hydra_local(err: BaseException, name: str) -> str | None:
    """The innermost value of local variable ``name`` along ``err``'s traceback."""
    found, tb = None, err.__traceback__
    while tb is not None:
        if name in tb.tb_frame.f_locals:
            found = str(tb.tb_frame.f_locals[name])
        tb = tb.tb_next
    return found


def _raised_in_hydra(err: BaseException) -> bool:
    """Whether ``err`` came from Hydra's own code, not from the task it ran."""
    frames, tb = [], err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    task = os.path.dirname(os.path.abspath(__file__)) + os.sep  # the ssgan package
    inside = [f for f in frames if f"{os.sep}hydra{os.sep}" in f or f.startswith(task)]
    return bool(inside) and not inside[-1].startswith(task)


def _one_line(err: Exception, override: str | None) -> str:
    """Boil a Hydra/OmegaConf composition error down to key, value and what is allowed."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    where = f"override '{override}'" if override else "config"
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", "") or ""
        msg = first_line(cause)
        if "not in struct" in msg or ("Key '" in msg and "not" in msg):
            if key in REMOVED_KEYS:
                return f"{where}: {key} was removed: {REMOVED_KEYS[key].instead}"
            return f"{where}: unknown key '{key}' (check the spelling; `--cfg job` lists every key)"
        return f"{where}: {key}: {msg}"
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    message = first_line(err)
    if any(line.startswith("Available options") for line in lines):
        start = [i for i, x in enumerate(lines) if x.startswith("Available")][0] + 1
        options = []
        for line in lines[start:]:
            if line.endswith(":"):  # the next section (the config search path)
                break
            if not line.endswith("_schema"):  # a method's schema, not a user's choice
                options.append(line)
        message += f" (available: {', '.join(options)})"
    return f"{where}: {message}"


def sweep_expansions(overrides: list[str]) -> Iterator[tuple[list[str], str | None]]:
    """Each sweep value in turn, with every other override at its first value."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    firsts = []
    for ov in parsed:
        if ov.is_sweep_override():
            values = [ov.get_key_element() + "=" + str(v) for v in ov.sweep_string_iterator()]
        else:
            assert ov.input_line is not None  # parse_overrides keeps each line
            values = [ov.input_line]
        firsts.append(values)
    base = [values[0] for values in firsts]
    yield base, None
    for i, values in enumerate(firsts):
        for value in values[1:]:
            yield base[:i] + [value] + base[i + 1 :], value


@dataclass(frozen=True)
class SearchPath:
    """Where Hydra looks for configs: the primary folder (``--config-path``) and the
    user's folders added with ``--config-dir`` (as ``hydra.main`` adds them)."""

    primary: str = CONFIG_DIR
    extra: tuple[str, ...] = ()


@contextlib.contextmanager
def _hydra_on(search: SearchPath) -> Iterator[None]:
    """``initialize_config_dir`` plus the ``--config-dir`` folders, placed where
    ``hydra.main`` places them (Hydra's public API has no such argument)."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path

    backup = get_gh_backup()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    path = create_config_search_path(search.primary)
    for folder in search.extra:
        path.prepend("command-line", f"file://{folder}", SearchPathQuery(provider="schema"))
    Hydra.create_main_hydra2(task_name="app", config_search_path=path)
    try:
        yield
    finally:
        restore_gh_from_backup(backup)


def compose_config(
    config_name: str | None,
    overrides: list[str],
    search: SearchPath | None = None,
    with_hydra: bool = False,
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` (None: only what ``overrides`` add) with
    overrides, raising ConfigError on failure; ``with_hydra``: with its ``hydra`` node
    (the sweeper's ``params``, say)."""
    register_schemas()
    register_help_resolver()
    try:
        with _hydra_on(search or SearchPath()):
            return compose(
                config_name=config_name, overrides=overrides, return_hydra_config=with_hydra
            )
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        culprit = _culprit(err, overrides)
        raise ConfigError(_one_line(err, culprit)) from err


# MLflow 3's own default store (ours too), and the one earlier versions made by default.
DEFAULT_STORE = "sqlite:///mlflow.db"
EARLIER_DEFAULT_STORE = "sqlite:///mlruns/mlflow.db"


def keep_earlier_default_store(cfg: DictConfig, overrides: list[str]) -> bool:
    """When ``cfg`` has the default store only by default, and the launch folder holds an
    earlier version's store (``mlruns/mlflow.db``) but no ``mlflow.db``: keep using it
    (through MLFLOW_TRACKING_URI, which this process's jobs and workers inherit) and say
    in one line how to move it to MLflow's default place. True when it did so."""
    if (
        "MLFLOW_TRACKING_URI" in os.environ
        or OmegaConf.select(cfg, "tracking.uri") != DEFAULT_STORE
        or any(o.lstrip("+~").startswith("tracking.uri=") for o in overrides)
        or Path("mlflow.db").exists()
        or not Path("mlruns/mlflow.db").is_file()
    ):
        return False
    os.environ["MLFLOW_TRACKING_URI"] = EARLIER_DEFAULT_STORE
    print(
        f"note: using {EARLIER_DEFAULT_STORE}, an earlier version's default store; "
        f"`mv mlruns/mlflow.db mlflow.db` moves it to today's default {DEFAULT_STORE} "
        "(MLflow's own, which `mlflow ui` opens)",
        file=sys.stderr,
    )
    return True


def default_tracking(uri: str | None = None) -> TrackingConfig:
    """The tracking section a training run gets by default (``conf/tracking/default.yaml``),
    with ``uri`` if given: the store of ``ssgan.predict --tracking-uri``. Composes
    that group alone, not the whole config."""
    composed = compose_config(None, ["+tracking=default"])
    if not uri and keep_earlier_default_store(composed, []):
        composed = compose_config(None, ["+tracking=default"])
    tracking = typed(composed.tracking, TrackingConfig)
    return replace(tracking, uri=uri) if uri else tracking


def _culprit(err: Exception, overrides: list[str]) -> str | None:
    """The override the error names: the one with the longest key found in its text
    (``method.threshold=…``, not ``method=…``, for an error about method.threshold)."""
    text = str(err)
    named = [
        (len(key), o) for o in overrides if (key := o.split("=", 1)[0].lstrip("+~")) in text and key
    ]
    return max(named)[1] if named else None


# Hydra flags that take a value as the next argument.
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


def _flag_values(argv: list[str]) -> dict[str, str]:
    """Hydra's flags that take a value (``--config-dir X`` or ``--config-dir=X``)."""
    found, pending = {}, None
    for arg in argv:
        if pending:
            found[pending], pending = arg, None
        elif arg in _FLAGS_WITH_VALUE:
            pending = arg
        elif arg.startswith("--") and arg.split("=", 1)[0] in _FLAGS_WITH_VALUE:
            found[arg.split("=", 1)[0]] = arg.split("=", 1)[1]
    long = {"-cd": "--config-dir", "-cp": "--config-path", "-cn": "--config-name"}
    return {long.get(k, k): v for k, v in found.items()}


def search_path(argv: list[str], config_name: str) -> tuple[SearchPath, str]:
    """The search path and primary config name ``hydra.main`` will use for ``argv``."""
    flags = _flag_values(argv)
    primary = flags.get("--config-path", CONFIG_DIR)
    if not primary.startswith("pkg://") and not os.path.isabs(primary):
        # hydra.main reads a relative --config-path from the entry point's folder
        primary = str(Path(__file__).resolve().parent / primary)
    extra: tuple[str, ...] = ()
    if "--config-dir" in flags:
        folder = os.path.abspath(flags["--config-dir"])
        if not os.path.isdir(folder):
            raise ConfigError(
                f"--config-dir {flags['--config-dir']}: there is no folder {folder} (give the "
                "folder that holds your config groups, e.g. one with experiment/mine.yaml)"
            )
        extra = (folder,)
    return SearchPath(primary, extra), flags.get("--config-name", config_name)


def overrides_only(argv: list[str]) -> list[str]:
    overrides, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides


def multirun_overrides(
    config_name: str | None, overrides: list[str], search: SearchPath | None = None
) -> list[str]:
    """The override lines Hydra's basic sweeper expands into a multirun's jobs: the
    config's ``hydra.sweeper.params`` (a sweep written in a config file, e.g. an
    experiment preset), then ``overrides``; of two lines for one key the later is kept,
    in the earlier's place. The params are read from the config as Hydra composes a
    multirun's: without the sweep overrides."""
    parser = OverridesParser.create()
    try:
        given = parser.parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(f"cannot parse overrides: {first_line(err)}") from err
    fixed = [o.input_line or "" for o in given if not o.is_sweep_override()]
    params = compose_config(config_name, fixed, search, with_hydra=True).hydra.sweeper.get("params")
    lines = [f"{key!s}={value!s}" for key, value in (params or {}).items()]
    try:
        from_config = parser.parse_overrides(lines)
    except HydraException as err:
        raise ConfigError(f"hydra.sweeper.params: {first_line(err)}") from err
    final: dict[str, str] = {}
    for override in [*from_config, *given]:
        final[override.get_key_element()] = override.input_line or ""
    return list(final.values())


def refuse_control_characters(overrides: list[str]) -> None:
    """A newline (or other control character) in an override: one line saying so, where
    Hydra's parser would only say ``LexerNoViableAltException``."""
    for override in overrides:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in override):
            raise ConfigError(
                f"override {override!r} contains a control character (a newline?): "
                "config values are one line"
            )


def check_overrides(
    config_name: str, argv: list[str], validate: Callable[[DictConfig], None]
) -> None:
    """Compose and validate every configuration that ``argv`` asks Hydra for."""
    register_help_resolver()
    if any(
        a in ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc")
        for a in argv
    ):
        return
    search, config_name = search_path(argv, config_name)
    overrides = overrides_only(argv)
    refuse_control_characters(overrides)
    if "-m" in argv or "--multirun" in argv:  # a sweep in the config is checked too
        overrides = multirun_overrides(config_name, overrides, search)
    try:
        expansions = list(sweep_expansions(overrides))
    except HydraException as err:
        raise ConfigError(f"cannot parse overrides: {first_line(err)}") from err
    for composed_overrides, value in expansions:
        cfg = compose_config(config_name, composed_overrides, search)
        if value is None and keep_earlier_default_store(cfg, overrides):
            cfg = compose_config(config_name, composed_overrides, search)
        try:
            validate(cfg)
        except ConfigError as err:
            if value is not None:
                raise ConfigError(f"{err} (in sweep value '{value}')") from err
            raise


register_help_resolver()  # also in launcher processes, which read the config unresolved
