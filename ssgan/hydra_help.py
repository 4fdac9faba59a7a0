"""Each app's ``--help``: its own config groups (the ``${ssgan_groups:...}`` resolver; Hydra's
$APP_CONFIG_GROUPS lists every app's) and the program named as the user invoked it (the
``${ssgan_app:...}`` resolver that every ``hydra.help.app_name`` in conf/ uses)."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf


def _group_listing(*groups: str) -> str:
    """``group: option, ...`` lines for an app's own groups, options as Hydra finds them
    on the search path (``--config-dir`` folders included)."""
    if not GlobalHydra.instance().is_initialized():
        return ", ".join(groups)  # resolved outside a Hydra app (e.g. --cfg all --resolve)
    loader = GlobalHydra.instance().config_loader()
    listing = []
    for group in groups:
        # ``<name>_schema`` options are the method group's schemas, not choices.
        options = [o for o in loader.get_group_options(group) if not o.endswith("_schema")]
        listing.append(f"{group}: {', '.join(sorted(options))}")
    return "\n".join(listing)


def invocation(app: str) -> str:
    """How the user started the command ``ssgan.<app>``: its console script's name
    (``ssgan-data-stats``) when ``sys.argv[0]`` is one, else ``python -m ssgan.<app>``."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return script if script.startswith("ssgan-") else f"python -m ssgan.{app}"


def register_help_resolver() -> None:
    if not OmegaConf.has_resolver("ssgan_groups"):
        OmegaConf.register_new_resolver("ssgan_groups", _group_listing)
    if not OmegaConf.has_resolver("ssgan_app"):
        OmegaConf.register_new_resolver("ssgan_app", invocation)
