"""Entry point: ``python -m ssgan.data_stats [overrides]`` (also ``ssgan-data-stats``):
prints a data split's figures beside SVHN's published ones
(:mod:`ssgan.data.statistics_report`); ``output=FILE.md`` also writes them to a file
headed by the machine, date, commit, generator version and command line.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from ssgan.cli import CONFIG_DIR, user_errors
from ssgan.command_start import check_command_line
from ssgan.config import DataStatsAppConfig, typed
from ssgan.config_checks import validate_data_stats_config
from ssgan.data import statistics_report as report
from ssgan.job_context import JobContext
from ssgan.job_paths import anchor_paths
from ssgan.runtime import start_tensorflow
from ssgan.tracking.provenance import git_state


def commit() -> str:
    """The checkout's commit, and whether it had uncommitted changes."""
    git = git_state()
    dirty = " (with uncommitted changes)" if git.get("ssgan.git_dirty") == "true" else ""
    return git.get("mlflow.source.git.commit", "unknown (not a git checkout)") + dirty


@hydra.main(config_path=CONFIG_DIR, config_name="data_stats", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    start_tensorflow()  # first: quietly, allocator set, before describe_machine loads it
    from ssgan.benchmarks.machine import describe_machine

    anchor_paths(cfg, JobContext.from_hydra())
    settings = typed(cfg, DataStatsAppConfig)
    with user_errors():
        output = report.check_output(settings.output)  # before minutes of generating
        measurement = report.measure(settings.data, settings.split)
        if output is not None:
            provenance = report.Provenance.now(describe_machine(), commit(), sys.argv)
            report.write_atomically(output, report.format_report(measurement, provenance))
    print(report.format_table(measurement))
    if output is not None:
        print(f"written: {output}", flush=True)


def main() -> None:
    # TensorFlow starts in _hydra_main: --help, --cfg and a refused override do without it.
    check_command_line("data_stats", validate_data_stats_config)
    _hydra_main()


if __name__ == "__main__":
    main()
