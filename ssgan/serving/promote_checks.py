"""The promote command's config checks (:func:`validate_promote_config`): keys, choices,
numbers, the run id, model name, image and registry aliases, one line each. Free of
TensorFlow and MLflow, so ``python -m ssgan.promote`` refuses a bad override before
either loads."""

from __future__ import annotations

import re

from omegaconf import DictConfig

from ssgan.config import PromoteAppConfig
from ssgan.config_checks import PROMOTE_CHOICES, PROMOTE_RANGES, check_table, check_unknown_keys
from ssgan.errors import ConfigError

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# An image repository by Docker's reference grammar (distribution/reference): an optional
# registry host (dot-separated DNS labels, an optional port) and lowercase path components
# joined by '.', '_', '__' or runs of '-'; at most 255 characters in all.
_HOST_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(
    rf"^(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]+)?/)?{_PATH_PART}(?:/{_PATH_PART})*$"
)
IMAGE_MAX_CHARS = 255


def validate_promote_config(cfg: DictConfig) -> None:
    """One-line ConfigError for promote keys that cannot work."""
    check_unknown_keys(cfg, PromoteAppConfig)
    check_table(cfg, PROMOTE_CHOICES, PROMOTE_RANGES)
    version = int(cfg.version)
    if cfg.run_id and version:
        raise ConfigError(
            f"run_id and version={version} given together: run_id=<id> promotes a run into a "
            "new version, version=<N> label=<label> moves a label to an existing one"
        )
    wants_run = not (cfg.list or version or cfg.bundle)
    if (cfg.run_id or wants_run) and not RUN_ID.match(str(cfg.run_id)):
        raise ConfigError(
            f"run_id={cfg.run_id or '(empty)'} is not an MLflow run id: expected 32 lowercase "
            "hex characters, e.g. run_id=3f9c0d6e4b7a4c21a0d3e8b5f1c2a9d7 (or list=true, "
            "version=<N> label=<label>, bundle=<folder>)"
        )
    name = str(cfg.model_name)
    if not MODEL_NAME.match(name) or ".." in name:
        raise ConfigError(
            f"model_name={name} is not a plain directory name: use letters, digits, '.', '_' "
            "and '-', starting with a letter or digit, without '/' or '..'"
        )
    if not str(cfg.serving_dir).strip():
        raise ConfigError("serving_dir is empty: give the folder TF Serving watches")
    if not str(cfg.server_model_dir).startswith("/"):
        raise ConfigError(
            f"server_model_dir={cfg.server_model_dir} is not an absolute path: give where "
            "serving_dir appears inside the TF Serving container, e.g. /models"
        )
    if len(str(cfg.image)) > IMAGE_MAX_CHARS:
        raise ConfigError(
            f"image is {len(str(cfg.image))} characters long: Docker allows at most "
            f"{IMAGE_MAX_CHARS} for an image repository name"
        )
    if not IMAGE.match(str(cfg.image)):
        raise ConfigError(
            f"image={cfg.image} is not an image repository: lowercase letters, digits, "
            "'.', '_', '-', '/' and an optional registry host, without a tag, e.g. "
            "registry.example.com/ml/ssgan-serving (the bundle adds the tag)"
        )
    for key in ("alias", "canary_alias"):
        # MLflow reserves "latest" and version-like names ("v3") for itself.
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", str(cfg[key])) or re.fullmatch(
            r"(?i)latest|v\d+", str(cfg[key])
        ):
            raise ConfigError(
                f"{key}={cfg[key]} is not a usable registry alias: start with a letter, then "
                "letters, digits, '_' or '-'; not 'latest' or 'v<number>'"
            )
    if str(cfg.alias) == str(cfg.canary_alias):
        raise ConfigError(
            f"alias and canary_alias are both '{cfg.alias}': the stable and canary labels need "
            "different registry aliases"
        )
