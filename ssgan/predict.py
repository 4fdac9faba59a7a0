"""Entry point: ``python -m ssgan.predict IMAGES... --model DIR`` (also ``ssgan-predict``);
:mod:`ssgan.serving.prediction` does the work. The one command with flags, not Hydra
overrides: its image files are positional arguments, so shell globs work, and it needs a
model folder, a server or a model URI, not conf/ (``--tracking-uri``: a URI's store).

Scores image files (JPEG, PNG, GIF, BMP; folders are searched) with one of:

* ``--model DIR`` -- a local SavedModel (a run's export, ``serving/ssgan/3``, or
  ``serving/ssgan``: its highest version), or ``models:/ssgan@production``;
* ``--rest-url URL`` (or ``--rest``) -- a running TensorFlow Serving, REST API
  (``http://localhost:8501/v1/models/ssgan``), images sent as ``{"b64": ...}``;
* ``--grpc HOST:PORT`` -- a running TensorFlow Serving, gRPC PredictionService
  (``--label stable`` asks for a version label; over REST, ``.../labels/stable`` in the URL).

Prints one row per file (predicted digit and its probability), or JSON with ``--json``.
Files that are not images, over the budgets (``--max-file-mb``, ``--max-megapixels``) or
that the model cannot decode are reported on stderr and skipped; the others are scored in
requests bounded by ``--batch-size`` and ``--max-batch-megapixels``, each within
``--timeout`` (docs/serving.md). Exit status: 0 every file scored, 1 some files skipped
(the rest printed), 2 nothing scored or a bad option (one line).
"""

from __future__ import annotations

from ssgan.runtime import start_tensorflow

start_tensorflow()  # first: quietly, allocator set, before the imports below load TensorFlow

import json
import sys

from ssgan.cli import user_errors
from ssgan.serving.prediction import (
    EXIT_SOME_SKIPPED,
    PredictOptions,
    check_options,
    parser,
    predict,
    print_table,
)


def main(argv: list[str] | None = None) -> None:
    options = PredictOptions.from_args(parser().parse_args(argv))
    with user_errors():
        check_options(options)
        predictions, skipped = predict(options)
    if options.json:
        print(json.dumps([p.__dict__ for p in predictions], indent=2))
    else:
        print_table(predictions)
    if skipped:
        sys.stdout.flush()
        print(f"{skipped} of {skipped + len(predictions)} files skipped", file=sys.stderr)
        sys.exit(EXIT_SOME_SKIPPED)


if __name__ == "__main__":
    main()
