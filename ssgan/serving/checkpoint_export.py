"""A run's checkpoint exported again, on demand (the ``ssgan.export`` command's work): its
``checkpoints/best`` or ``checkpoints/last`` downloaded and written as a new SavedModel."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ssgan.config import ExportAppConfig, TrainAppConfig, typed
from ssgan.method_config import evaluates_an_average
from ssgan.serving.contract import ExportError
from ssgan.serving.saved_model import export_from_checkpoint, remove_dead_exports
from ssgan.tracking.runs import download_artifacts, load_run_config
from ssgan.tracking.store import TrackingStore


def export_run(settings: ExportAppConfig, warmup_images: np.ndarray) -> list[Path]:
    """Export ``settings.run_id``'s chosen checkpoint to ``settings.output``, which must not
    exist; return the folders killed exports of it had left, which it removed."""
    output = Path(settings.output)
    if output.exists():
        raise ExportError(f"output={output} already exists: choose a new directory")
    removed = remove_dead_exports(output)  # what exports of it killed earlier left
    store = TrackingStore(settings.tracking)
    run = typed(load_run_config(store, settings.run_id), TrainAppConfig)
    with tempfile.TemporaryDirectory() as tmp:
        where = f"checkpoints/{settings.checkpoint}"
        local = download_artifacts(store, settings.run_id, where, Path(tmp))
        use_ema = settings.checkpoint == "last"  # "best" holds the classifier it evaluated
        use_ema = use_ema and evaluates_an_average(run.method, run.train.ema_decay)
        export_from_checkpoint(
            run.model, local, output, warmup_images=warmup_images, use_ema=use_ema
        )
    return removed
