"""Entry point: ``python -m ssgan.promote run_id=<id>`` (also ``ssgan-promote``).

Promotes a run's model into the versioned serving folder, moves labels, lists versions
and writes the hand-over bundle; :mod:`ssgan.serving.promotion` does the work."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from ssgan.cli import CONFIG_DIR, user_errors
from ssgan.command_start import check_command_line
from ssgan.job_context import JobContext
from ssgan.job_paths import anchor_paths
from ssgan.runtime import start_tensorflow
from ssgan.serving.promote_checks import validate_promote_config


@hydra.main(config_path=CONFIG_DIR, config_name="promote", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    start_tensorflow()  # first: quietly, allocator set, before the imports below load it
    from ssgan.serving.promotion import describe, format_versions, promote, promote_settings
    from ssgan.serving.repository import ServingFolder

    anchor_paths(cfg, JobContext.from_hydra())
    with user_errors():
        settings = promote_settings(cfg)
        result = promote(settings)
    if settings.list:
        print(format_versions(ServingFolder.of(settings).root, result.versions))
    else:
        print(describe(settings, result))
    sys.stdout.flush()


def main() -> None:
    # TensorFlow starts in _hydra_main: --help, --cfg and a refused override do without it.
    check_command_line("promote", validate_promote_config)
    _hydra_main()


if __name__ == "__main__":
    main()
