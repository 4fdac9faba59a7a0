"""Entry point: ``python -m ssgan.train [overrides]`` (also ``ssgan-train``).

Hydra composes the config; :func:`ssgan.run.train` does the run. ``train`` is re-exported
here for callers that import it from the entry point.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from ssgan.cli import CONFIG_DIR, check_overrides, compose_config, user_errors
from ssgan.config import register_schemas, validate_train_config
from ssgan.run import train
from ssgan.tracking import client_for, experiment_id

__all__ = ["main", "train"]


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    with user_errors():
        try:
            summary = train(cfg)
        except KeyboardInterrupt:
            print(
                "interrupted: the run is marked KILLED; continue it with "
                "python -m ssgan.train resume=<run_id>",
                file=sys.stderr,
            )
            sys.exit(130)
    print(f"run_id: {summary['run_id']}")
    print(f"model: {summary['model_uri']}")
    print(
        f"best val accuracy {summary['best_val_accuracy']:.4f} (epoch {summary['best_epoch']}), "
        f"exported model test accuracy {summary['export_test_accuracy']:.4f}"
    )


def main() -> None:
    register_schemas()
    with user_errors():
        check_overrides("config", sys.argv[1:], validate_train_config)
        if "-m" in sys.argv[1:] or "--multirun" in sys.argv[1:]:
            _prepare_store_for_parallel_jobs(sys.argv[1:])
    _hydra_main()


def _prepare_store_for_parallel_jobs(argv: list[str]) -> None:
    """Create the MLflow store and experiment once, before a sweep's jobs start: jobs
    launched in parallel would otherwise race to create the same SQLite schema."""
    cfg = compose_config("config", [a for a in argv if not a.startswith("-") and "," not in a])
    experiment_id(client_for(cfg.tracking), cfg.tracking)


if __name__ == "__main__":
    main()
