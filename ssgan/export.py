"""Entry point: ``python -m ssgan.export RUN_ID --output DIR``: export a run's best or last
checkpoint as a SavedModel for TF Serving (:mod:`ssgan.serving.saved_model`)."""

from __future__ import annotations

from ssgan.runtime import start_tensorflow

start_tensorflow()  # first: quietly, allocator set, before the imports below load TensorFlow

import argparse
import tempfile
from pathlib import Path

from ssgan.data.synthetic import sample_crops
from ssgan.method_config import evaluates_an_average
from ssgan.serving.contract import ExportError
from ssgan.serving.saved_model import export_from_checkpoint, remove_dead_exports
from ssgan.serving.warmup import WARMUP_BATCH


def main(argv: list[str] | None = None) -> None:
    """``python -m ssgan.export RUN_ID --output DIR``: export a run's checkpoint on demand."""
    parser = argparse.ArgumentParser(
        prog="python -m ssgan.export",
        description="Export a run's best or last checkpoint as a SavedModel for TF Serving.",
    )
    parser.add_argument("run_id")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument("--output", required=True, help="directory to create")
    parser.add_argument("--tracking-uri", default=None, help="default: tracking.uri of conf/")
    args = parser.parse_args(argv)
    from ssgan.cli import default_tracking, user_errors
    from ssgan.config import TrainAppConfig, typed
    from ssgan.tracking.runs import download_artifacts, load_run_config
    from ssgan.tracking.store import TrackingStore

    with user_errors():
        tracking = default_tracking(args.tracking_uri)
        output = Path(args.output)
        if output.exists():
            raise ExportError(f"--output {output} already exists: choose a new directory")
        removed = remove_dead_exports(output)  # what exports of it killed earlier left
        store = TrackingStore(tracking)
        cfg = typed(load_run_config(store, args.run_id), TrainAppConfig)
        with tempfile.TemporaryDirectory() as tmp:
            local = download_artifacts(
                store, args.run_id, f"checkpoints/{args.checkpoint}", Path(tmp)
            )
            use_ema = args.checkpoint == "last"  # "best" holds the classifier it evaluated
            use_ema = use_ema and evaluates_an_average(cfg.method, cfg.train.ema_decay)
            export_from_checkpoint(
                cfg.model, local, output, warmup_images=sample_crops(WARMUP_BATCH), use_ema=use_ema
            )
    print("".join(f"removed {path}, left by a killed export\n" for path in removed), end="")
    print(f"exported {output}", flush=True)


if __name__ == "__main__":
    main()
