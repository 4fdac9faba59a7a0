"""The ``bench`` config group's schemas: ``bench=train`` and ``bench=serve``, each with its
own knobs (``python -m ssgan.bench``, docs/performance.md).

``bench=<name>`` picks the benchmark (conf/bench/<name>.yaml selects its schema), as
``method=<name>`` picks a method; every other override of the command is a training
override, applied to the training config the benchmark measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The model widths ``bench.widths`` may list: the config's own, and the smoke preset's.
BENCH_WIDTHS = ("default", "smoke")


@dataclass(frozen=True)
class BenchConfig:
    """``bench.*`` common to both benchmarks: which one (the group option), and JSON."""

    name: str = "train"
    json: bool = False  # print JSON (the machine under "machine") instead of a table


@dataclass(frozen=True)
class TrainBenchConfig(BenchConfig):
    """``bench=train``: the full training loop against a bare step, in alternating rounds."""

    name: str = "train"
    steps: int = 40  # timed steps per round at the default widths (smoke widths: 5x)
    rounds: int = 4  # alternating rounds of the loop and the bare step
    warmup: int = 10  # untimed steps first
    widths: list[str] = field(default_factory=lambda: list(BENCH_WIDTHS))
    # Methods benchmarked side by side ([all]: every registered one); [] = the config's.
    methods: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ServeBenchConfig(BenchConfig):
    """``bench=serve``: an exported model's ``serving_default`` on JPEG bytes against the
    discriminator alone on decoded tensors."""

    name: str = "serve"
    requests: int = 200  # single-image requests timed


# The group's options: name -> schema (conf/bench/<name>.yaml selects it).
BENCH_SCHEMAS: dict[str, type[BenchConfig]] = {
    "train": TrainBenchConfig,
    "serve": ServeBenchConfig,
}
