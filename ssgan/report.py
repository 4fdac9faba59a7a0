"""Entry point: ``python -m ssgan.report parent_run_id=<id> [output=DIR]
[metrics=[KEY,...]] [tracking.uri=URI]`` (also ``ssgan-report``): writes a sweep's report
(:mod:`ssgan.sweeps.report`), tables and plots of its runs."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from ssgan.cli import CONFIG_DIR, user_errors
from ssgan.command_checks import check_required, validate_report_config
from ssgan.command_start import check_command_line
from ssgan.config import ReportAppConfig, typed
from ssgan.job_context import JobContext
from ssgan.job_paths import anchor_paths
from ssgan.sweeps.report import write_report
from ssgan.tracking.store import TrackingStore

# The flags the command took before it was a Hydra app, and their key=value forms.
OLD_FLAGS = {
    "--tracking-uri": "tracking.uri=<uri>",
    "--out": "output=<folder>",
    "--metric": "metrics=[<key>,...]",
}


@hydra.main(config_path=CONFIG_DIR, config_name="report", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    anchor_paths(cfg, JobContext.from_hydra())
    with user_errors():
        check_required(cfg, {"parent_run_id": "<the sweep's parent run id, which it printed>"})
        settings = typed(cfg, ReportAppConfig)
        parent = settings.parent_run_id
        out = Path(settings.output or Path("reports") / parent)
        path = write_report(TrackingStore(settings.tracking), parent, out, settings.metrics)
    print(f"report: {path}", flush=True)


def main() -> None:
    # TensorFlow starts in _hydra_main: --help, --cfg and a refused override do without it.
    check_command_line("report", validate_report_config, OLD_FLAGS, bare="parent_run_id={}")
    _hydra_main()


if __name__ == "__main__":
    main()
