"""The command-line forms the Hydra commands no longer take (``--tracking-uri URI``, a bare
run id): each refused in one line that names its ``key=value`` form."""

from __future__ import annotations

from collections.abc import Mapping

from ssgan.cli import overrides_only
from ssgan.errors import ConfigError
from ssgan.hydra_help import invocation

# Hydra's own flags, which every command still takes (``--cfg job``, ``-m``, ``--help``).
HYDRA_FLAGS = frozenset({
    "--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--resolve", "--package",
    "-p", "--run", "-r", "--multirun", "-m", "--shell-completion", "-sc", "--config-path",
    "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--info", "-i",
    "--experimental-rerun",
})  # fmt: skip


def refuse_old_forms(app: str, argv: list[str], flags: Mapping[str, str], bare: str) -> None:
    """Raise ConfigError for the first argument of ``argv`` that ``ssgan.<app>`` took before
    it became a Hydra app: a flag in ``flags`` (old flag -> its new form) or any other flag
    Hydra does not know, or a bare word (no ``=``), whose new form is ``bare`` with the word
    in its ``{}``."""
    see = f"({invocation(app)} --help lists every key)"
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in flags:
            raise ConfigError(f"{flag} is now {flags[flag]} {see}")
        if flag.startswith("-") and flag not in HYDRA_FLAGS:
            raise ConfigError(f"{flag} is not an option of {invocation(app)}: use key=value {see}")
    for word in overrides_only(argv):
        if "=" not in word and not word.startswith("~"):  # ~key deletes a key: Hydra's
            raise ConfigError(f"{word} is now {bare.format(word)} {see}")
