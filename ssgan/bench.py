"""Entry point: ``python -m ssgan.bench train`` and ``... serve`` (:mod:`ssgan.benchmarks`).

``train`` times, in one process, (a) the framework's full loop (input pipeline, step,
metric logging to a real MLflow store, checkpoints) and (b) a bare step of the same
maths on tensors already in memory, and relates both to the machine's own float32
matmul peak, for the config's method or (``--methods``) several side by side. ``serve``
times an exported model's ``serving_default`` signature on JPEG bytes against the
discriminator alone on decoded tensors. Ratios are measured side by
side in the same run, because these machines are noisy.
"""

from __future__ import annotations

from ssgan.runtime import start_tensorflow

start_tensorflow()  # first: quietly, allocator set, before the imports below load TensorFlow

import sys

from ssgan.benchmarks.command import BenchOptions, parser, print_results, run_benchmark
from ssgan.cli import user_errors


def main(argv: list[str] | None = None) -> None:
    options = BenchOptions.from_args(parser().parse_intermixed_args(argv))
    with user_errors():
        results = run_benchmark(options)
    print_results(results, options.json)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
