"""What a Hydra command does with its command line before Hydra parses it: the schemas
registered, the shell completer installed for its console script, the forms it no longer
takes refused and every override checked, each refusal one line (docs/training.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from omegaconf import DictConfig

from ssgan.cli import check_overrides, user_errors
from ssgan.completion import complete_console_script
from ssgan.config import register_schemas
from ssgan.old_flags import refuse_old_forms


def check_command_line(
    config_name: str,
    validate: Callable[[DictConfig], None],
    old_flags: Mapping[str, str] | None = None,
    bare: str = "",
) -> None:
    """Ready ``sys.argv`` for the Hydra app ``config_name``, or exit with one line: its
    old ``--flags`` (``old_flags``: flag -> its ``key=value`` form) and a bare word (whose
    form is ``bare``) refused, its overrides composed and checked by ``validate``.
    TensorFlow is not started here, so ``--help``, ``--cfg`` and a refusal do without it."""
    register_schemas()
    complete_console_script()  # -sc install=bash: for the console script
    with user_errors():
        if old_flags is not None:
            refuse_old_forms(config_name, sys.argv[1:], old_flags, bare=bare)
        check_overrides(config_name, sys.argv[1:], validate)
