"""Several promotes in one process, each held mid-copy at its own gate, for races run in
rounds: ``python tests/helpers/racing_promotes.py GATES ROUNDS [promote overrides]``
promotes into ``model_name=race<r>`` for r in 0..ROUNDS-1, holding round r after each
copied file while ``GATES/<r>`` exists, and prints one line per round: what
``python -m ssgan.promote`` prints, or ``error: ...`` where it would exit. TensorFlow loads
once, so a round costs a promote, not a process start."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ssgan.runtime import start_tensorflow

start_tensorflow()  # as python -m ssgan.promote does, before the imports below load it

from ssgan.cli import compose_config  # noqa: E402
from ssgan.errors import first_line  # noqa: E402
from ssgan.serving.promotion import describe, promote, promote_settings  # noqa: E402


def main(gates: Path, rounds: int, overrides: list[str]) -> None:
    for number in range(rounds):
        gate = gates / str(number)

        def hold(_copied: Path, gate: Path = gate) -> None:
            while gate.exists():
                time.sleep(0.01)

        settings = promote_settings(
            compose_config("promote", [*overrides, f"model_name=race{number}"])
        )
        try:
            line = describe(settings, promote(settings, on_file_copied=hold)).splitlines()[0]
        except Exception as err:  # the round's outcome is what the test checks
            line = f"error: {type(err).__name__}: {first_line(err)}"
        print(line, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
