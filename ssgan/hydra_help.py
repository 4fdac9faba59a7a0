"""Each app's ``--help`` lists its own config groups: the ``${ssgan_groups:...}`` resolver
that an app's ``hydra.help.template`` uses (Hydra's $APP_CONFIG_GROUPS lists every app's)."""

from __future__ import annotations

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


def register_help_resolver() -> None:
    if not OmegaConf.has_resolver("ssgan_groups"):
        OmegaConf.register_new_resolver("ssgan_groups", _group_listing)
