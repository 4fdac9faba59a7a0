"""A promote that stops at a chosen point, for a test to kill there with ``kill -9``:
``python tests/helpers/held_promote.py READY POINT [promote overrides]`` runs what
``python -m ssgan.promote`` runs and, on reaching POINT, creates the file READY and waits.

POINT ``rename``: its number is logged, the rename that publishes the version is next.
POINT ``label``: the version is renamed into place, its label is not written yet.

Production code has no hook there: a profile function, armed once the copy into staging
is done (promote's ``on_file_copied`` hook), watches for that call."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from ssgan.runtime import start_tensorflow

start_tensorflow()  # as python -m ssgan.promote does, before the imports below load it

from ssgan.cli import compose_config  # noqa: E402
from ssgan.serving.promotion import describe, promote, promote_settings  # noqa: E402


def reached(point: str, frame: FrameType, event: str, arg: Any) -> bool:
    if point == "rename":  # the version's rename, called from the publishing step
        return event == "c_call" and arg is os.rename and frame.f_code.co_name == "_publish"
    return event == "call" and frame.f_code.co_name == "set_label"


def main(ready: Path, point: str, overrides: list[str]) -> None:
    def watch(frame: FrameType, event: str, arg: Any) -> None:
        if reached(point, frame, event, arg):
            sys.setprofile(None)
            ready.touch()
            while True:  # until killed
                time.sleep(1)

    def arm(_copied: Path) -> None:
        sys.setprofile(watch)

    settings = promote_settings(compose_config("promote", overrides))
    print(describe(settings, promote(settings, on_file_copied=arm)), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
