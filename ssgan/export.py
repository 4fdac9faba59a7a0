"""Entry point: ``python -m ssgan.export run_id=<id> output=DIR [checkpoint=best|last]``
(also ``ssgan-export``): export a run's best or last checkpoint as a SavedModel for TF
Serving (:mod:`ssgan.serving.saved_model`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ssgan.cli import CONFIG_DIR, user_errors
from ssgan.command_checks import check_required, validate_export_config
from ssgan.command_start import check_command_line
from ssgan.config import ExportAppConfig, typed
from ssgan.job_context import JobContext
from ssgan.job_paths import anchor_paths
from ssgan.runtime import start_tensorflow

# The flags the command took before it was a Hydra app, and their key=value forms.
OLD_FLAGS = {
    "--tracking-uri": "tracking.uri=<uri>",
    "--output": "output=<folder>",
    "--checkpoint": "checkpoint=best|last",
}


@hydra.main(config_path=CONFIG_DIR, config_name="export", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    start_tensorflow()  # first: quietly, allocator set, before the imports below load it
    from ssgan.data.synthetic import sample_crops
    from ssgan.serving.checkpoint_export import export_run
    from ssgan.serving.warmup import WARMUP_BATCH

    anchor_paths(cfg, JobContext.from_hydra())
    with user_errors():
        check_required(cfg, {"run_id": "<32-hex run id>", "output": "<new folder>"})
        settings = typed(cfg, ExportAppConfig)
        removed = export_run(settings, warmup_images=sample_crops(WARMUP_BATCH))
    print("".join(f"removed {path}, left by a killed export\n" for path in removed), end="")
    print(f"exported {settings.output}", flush=True)


def main() -> None:
    # TensorFlow starts in _hydra_main: --help, --cfg and a refused override do without it.
    check_command_line("export", validate_export_config, OLD_FLAGS, bare="run_id={}")
    _hydra_main()


if __name__ == "__main__":
    main()
