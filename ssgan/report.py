"""Entry point: ``python -m ssgan.report <parent run id> [--out DIR] [--metric KEY ...]``.

Writes a sweep's report (:mod:`ssgan.sweeps.report`): tables and plots of its runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssgan.cli import default_tracking, user_errors
from ssgan.sweeps.report import DEFAULT_METRICS, write_report
from ssgan.tracking.store import TrackingStore


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ssgan.report",
        description="Tables and plots of a sweep's runs (a grid or a search).",
    )
    parser.add_argument("parent_run_id", help="the sweep's parent run (printed by the sweep)")
    parser.add_argument("--out", default=None, help="folder to write (default reports/<id>/)")
    parser.add_argument(
        "--metric",
        action="append",
        default=None,
        help=f"metric to tabulate, repeatable (default: {' '.join(DEFAULT_METRICS)})",
    )
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow store (default: as ssgan.train)"
    )
    args = parser.parse_args()
    with user_errors():
        store = TrackingStore(default_tracking(args.tracking_uri))
        out = Path(args.out) if args.out else Path("reports") / args.parent_run_id
        path = write_report(store, args.parent_run_id, out, args.metric or DEFAULT_METRICS)
    print(f"report: {path}")


if __name__ == "__main__":
    main()
