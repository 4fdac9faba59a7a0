"""Shell completion for the console scripts: Hydra's completer, installed for the command
it can complete (docs/training.md, "Shell completion")."""

from __future__ import annotations

import sys
from pathlib import Path


def complete_console_script() -> None:
    """``python -m ssgan.<app> -sc install=bash``: Hydra would install its completer for
    ``python``, and that completer only completes ``python <file>.py`` (never ``-m``).
    Install it for the app's console script instead (``ssgan-train``), which it completes;
    a note on stderr says so (``eval "$(…)"`` reads stdout only)."""
    argv = sys.argv
    if not argv or not argv[0].endswith(".py") or not {"-sc", "--shell-completion"} & set(argv):
        return
    if not any(a.startswith(("install=", "uninstall=")) for a in argv[1:]):
        return
    script = "ssgan-" + Path(argv[0]).stem.replace("_", "-")
    sys.argv[0] = script
    print(
        f"note: shell completion is for the console script {script} (`{script} model=<TAB>`); "
        "`python -m` command lines cannot be completed (docs/training.md)",
        file=sys.stderr,
    )
