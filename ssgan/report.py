"""Entry point: ``python -m ssgan.report parent_run_id=<id> [output=DIR]
[metrics=[KEY,...]] [tracking.uri=URI]`` (also ``ssgan-report``): writes a sweep's report
(:mod:`ssgan.sweeps.report`), tables and plots of its runs."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ssgan.cli import CONFIG_DIR, check_overrides, user_errors
from ssgan.command_checks import check_required, validate_report_config
from ssgan.completion import complete_console_script
from ssgan.config import ReportAppConfig, register_schemas, typed
from ssgan.job_context import JobContext
from ssgan.job_paths import anchor_paths
from ssgan.old_flags import refuse_old_forms
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
    register_schemas()
    complete_console_script()  # -sc install=bash: for the console script
    with user_errors():
        refuse_old_forms("report", sys.argv[1:], OLD_FLAGS, bare="parent_run_id={}")
        check_overrides("report", sys.argv[1:], validate_report_config)
    _hydra_main()


if __name__ == "__main__":
    main()
