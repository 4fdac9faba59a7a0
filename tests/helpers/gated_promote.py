"""A promote held after each copied file while a gate file exists, run as its own process:
``python tests/helpers/gated_promote.py GATE [promote overrides]`` prints what
``python -m ssgan.promote`` prints. tests/test_promote.py holds promotes mid-copy with it
(to kill one, or to make two overlap) and then lets them go by removing the gate."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ssgan.runtime import start_tensorflow

start_tensorflow()  # as python -m ssgan.promote does, before the imports below load it

from ssgan.cli import compose_config  # noqa: E402
from ssgan.serving.promotion import describe, promote, promote_settings  # noqa: E402


def main(gate: Path, overrides: list[str]) -> None:
    def hold(_copied: Path) -> None:
        while gate.exists():
            time.sleep(0.01)

    settings = promote_settings(compose_config("promote", overrides))
    print(describe(settings, promote(settings, on_file_copied=hold)), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
