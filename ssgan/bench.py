"""Entry point: ``python -m ssgan.bench [bench=train|serve] [bench.KEY=VALUE ...] [training
overrides]`` (also ``ssgan-bench``; :mod:`ssgan.benchmarks`).

``bench=train`` (the default) times, in one process, (a) the framework's full loop (input
pipeline, step, metric logging to a real MLflow store, checkpoints) and (b) a bare step of
the same maths on tensors already in memory, and relates both to the machine's own float32
matmul peak, for the config's method or (``bench.methods=[...]``) several side by side.
``bench=serve`` times an exported model's ``serving_default`` signature on JPEG bytes
against the discriminator alone on decoded tensors. Ratios are measured side by side in
the same run, because these machines are noisy.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from ssgan.benchmarks.command import (
    OLD_FLAGS,
    BenchOptions,
    print_results,
    run_benchmark,
    with_first_method,
)
from ssgan.cli import CONFIG_DIR, check_overrides, user_errors
from ssgan.command_checks import validate_bench_config
from ssgan.completion import complete_console_script
from ssgan.config import BenchAppConfig, register_schemas, typed
from ssgan.job_context import JobContext
from ssgan.old_flags import refuse_old_forms
from ssgan.runtime import start_tensorflow


@hydra.main(config_path=CONFIG_DIR, config_name="bench", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    start_tensorflow()  # first: quietly, allocator set, before run_benchmark imports it
    job = JobContext.from_hydra()
    with user_errors():
        options = BenchOptions.from_job(typed(cfg, BenchAppConfig).bench, job.overrides)
        results = run_benchmark(options)
    print_results(results, options.bench.json)
    sys.stdout.flush()


def main() -> None:
    # TensorFlow starts in _hydra_main: --help, --cfg and a refused override do without it.
    register_schemas()
    complete_console_script()  # -sc install=bash: for the console script
    with user_errors():
        refuse_old_forms("bench", sys.argv[1:], OLD_FLAGS, bare="bench={}")
        sys.argv[1:] = with_first_method(sys.argv[1:])
        check_overrides("bench", sys.argv[1:], validate_bench_config)
    _hydra_main()


if __name__ == "__main__":
    main()
