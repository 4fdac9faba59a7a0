"""Command-line plumbing shared by the entry points: early config checks, one-line errors.

Hydra reports composition errors as several lines and a hint about HYDRA_FULL_ERROR.
``check_overrides`` composes the config itself first (every value of a sweep too), so a
bad override stops before Hydra starts, before any output directory or MLflow run exists.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ssgan.config import register_schemas
from ssgan.errors import ConfigError, UserError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def program_name() -> str:
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "ssgan"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a UserError into one line on stderr and exit status 2."""
    try:
        yield
    except UserError as err:
        message = " ".join(str(err).split())
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _one_line(err: Exception, override: str | None) -> str:
    """Boil a Hydra/OmegaConf composition error down to key, value and what is allowed."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    where = f"override '{override}'" if override else "config"
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", "") or ""
        msg = str(getattr(cause, "msg", cause)).split("\n")[0]
        if "not in struct" in msg or ("Key '" in msg and "not" in msg):
            return f"{where}: unknown key '{key}' (check the spelling; `--cfg job` lists every key)"
        return f"{where}: {key}: {msg}"
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    message = lines[0] if lines else type(err).__name__
    if any(line.startswith("Available options") for line in lines):
        start = [i for i, x in enumerate(lines) if x.startswith("Available")][0] + 1
        options = []
        for line in lines[start:]:
            if line.endswith(":"):  # the next section (the config search path)
                break
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
            values = [ov.input_line]
        firsts.append(values)
    base = [values[0] for values in firsts]
    yield base, None
    for i, values in enumerate(firsts):
        for value in values[1:]:
            yield base[:i] + [value] + base[i + 1 :], value


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides, raising ConfigError on failure."""
    register_schemas()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        culprit = _culprit(err, overrides)
        raise ConfigError(_one_line(err, culprit)) from err


def _culprit(err: Exception, overrides: list[str]) -> str | None:
    text = str(err)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key and key in text:
            return override
    return None


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


def check_overrides(
    config_name: str, argv: list[str], validate: Callable[[DictConfig], None]
) -> None:
    """Compose and validate every configuration that ``argv`` asks Hydra for."""
    if any(
        a in ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc")
        for a in argv
    ):
        return
    overrides = overrides_only(argv)
    try:
        expansions = list(sweep_expansions(overrides))
    except HydraException as err:
        raise ConfigError(f"cannot parse overrides: {str(err).splitlines()[0]}") from err
    for composed_overrides, value in expansions:
        cfg = compose_config(config_name, composed_overrides)
        try:
            validate(cfg)
        except ConfigError as err:
            if value is not None:
                raise ConfigError(f"{err} (in sweep value '{value}')") from err
            raise
