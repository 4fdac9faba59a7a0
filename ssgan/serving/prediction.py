"""Scoring image files: find and read them, score them in batches with one of the clients,
and skip (naming them) the files that are not images or that the model cannot decode."""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import math
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ssgan.hydra_help import invocation
from ssgan.serving.clients import (
    ImagesRefusedError,
    PredictError,
    check_rest_url,
    is_model_uri,
    local_scorer,
    mlflow_model_scorer,
    score_grpc,
    score_rest,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp"}
# Signatures that take encoded images under the input name ``images``.
IMAGE_SIGNATURES = ("serving_default", "predict_images")
EXIT_SOME_SKIPPED = 1
# The budgets' defaults (options --max-file-mb, --max-megapixels, --max-batch-megapixels;
# docs/serving.md). Decoding one 50-megapixel PNG peaked at 1.6 GB and eight at 2.9 GB
# (issue 32): without a pixel budget a batch of 64 such images would need ~12 GB.
MAX_FILE_MB = 64.0
MAX_MEGAPIXELS = 50.0
MAX_BATCH_MEGAPIXELS = 100.0
_MIB = 1 << 20


@dataclass
class Prediction:
    file: str
    digit: int
    probability: float
    scores: list[float]


def image_files(paths: list[str]) -> list[Path]:
    """The given files, and image files found (recursively, sorted) in given folders."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            named = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            # A folder named like an image is searched (rglob), not listed as a file.
            found.extend(sorted(p for p in named if not p.is_dir()))
        else:
            found.append(path)
    return found


class UnreadableFileError(Exception):
    """A file that is skipped; its message says why, in one line without the file's name."""


@dataclass(frozen=True)
class ReadLimits:
    """What one file may hold: bytes on disk, and pixels (width x height, from its header)."""

    file_bytes: int
    pixels: int


def read_image(path: Path, limits: ReadLimits) -> tuple[bytes, int]:
    """The bytes of an image file and its pixel count, within ``limits``; or
    :class:`UnreadableFileError`: not a regular file, too large, not an image."""
    try:
        # O_NONBLOCK: a FIFO opens at once, not when a writer comes, so fstat can refuse it.
        # The open file is checked, not its name, so nothing can be swapped in between.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise UnreadableFileError(f"not a readable image ({err.strerror or err})") from err
    try:
        info = os.fstat(fd)  # of the target: a symlink to a regular image is fine
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "a special file")
            raise UnreadableFileError(f"not a regular file ({kind})")
        if info.st_size > limits.file_bytes:
            raise UnreadableFileError(f"{info.st_size:,} bytes, {_above(limits)}")
        with open(fd, "rb", closefd=False) as file:
            data = file.read(limits.file_bytes + 1)  # no more: it may grow after fstat
    except OSError as err:
        raise UnreadableFileError(f"not a readable image ({err.strerror or err})") from err
    finally:
        os.close(fd)
    if len(data) > limits.file_bytes:
        raise UnreadableFileError(f"it grew while read, {_above(limits)}")
    return data, _checked_pixels(data, limits.pixels)


_FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket",
               stat.S_IFDIR: "a folder"}  # fmt: skip


def _above(limits: ReadLimits) -> str:
    return f"above the --max-file-mb limit ({limits.file_bytes:,} bytes)"


def _checked_pixels(data: bytes, budget: int) -> int:
    """The image's width x height from its header (nothing decoded), at most ``budget``;
    then Pillow's structural check of the file."""
    limit = Image.MAX_IMAGE_PIXELS
    # Our budget decides, not Pillow's fixed bomb limit (which would hide the size); the
    # header is read before any pixel, so the check below comes before decoding.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > budget:
                raise UnreadableFileError(
                    f"{width}x{height} pixels ({width * height / 1e6:.3g} megapixels), above "
                    f"the --max-megapixels limit ({budget / 1e6:g})"
                )
            image.verify()
    except UnidentifiedImageError as err:  # its message names the in-memory buffer
        raise UnreadableFileError("not a readable image (not a format Pillow knows)") from err
    except (OSError, SyntaxError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise UnreadableFileError(f"not a readable image ({reason})") from err
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return width * height


def readable_batches(
    paths: list[Path], size: int, limits: ReadLimits, batch_pixels: int
) -> Iterator[tuple[list[Path], list[bytes]]]:
    """The readable images in batches of at most ``size`` images and ``batch_pixels``
    pixels (a larger image goes alone), each file read when its batch fills: a folder of
    any size is never held in memory whole. Unreadable files are named and skipped."""
    files: list[Path] = []
    blobs: list[bytes] = []
    pixels = 0
    for path in paths:
        try:
            data, count = read_image(path, limits)
        except UnreadableFileError as err:
            print(f"skipped {path}: {err}", file=sys.stderr)
            continue
        if blobs and pixels + count > batch_pixels:
            yield files, blobs
            files, blobs, pixels = [], [], 0
        files.append(path)
        blobs.append(data)
        pixels += count
        if len(blobs) == size:
            yield files, blobs
            files, blobs, pixels = [], [], 0
    if blobs:
        yield files, blobs


@dataclass(frozen=True)
class PredictOptions:
    """What to score and where the model is: exactly one of ``model`` (a SavedModel folder
    or an MLflow model URI), ``rest`` (a TF Serving REST URL) and ``grpc`` (its gRPC
    address) is set; the other fields say how to ask it and what to print."""

    images: tuple[str, ...]
    model: str | None = None
    rest: str | None = None
    grpc: str | None = None
    tracking_uri: str | None = None
    model_name: str = "ssgan"
    label: str = ""
    signature: str = "serving_default"
    batch_size: int = 64
    timeout: float = 30.0
    json: bool = False
    max_file_mb: float = MAX_FILE_MB
    max_megapixels: float = MAX_MEGAPIXELS
    max_batch_megapixels: float = MAX_BATCH_MEGAPIXELS

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PredictOptions:
        """The options :func:`parser` parsed."""
        return cls(images=tuple(args.images), model=args.model, rest=args.rest,
                   grpc=args.grpc, tracking_uri=args.tracking_uri, model_name=args.model_name,
                   label=args.label, signature=args.signature, batch_size=args.batch_size,
                   timeout=args.timeout, json=args.json, max_file_mb=args.max_file_mb,
                   max_megapixels=args.max_megapixels,
                   max_batch_megapixels=args.max_batch_megapixels)  # fmt: skip

    @property
    def read_limits(self) -> ReadLimits:
        """The per-file budgets in bytes and pixels."""
        return ReadLimits(int(self.max_file_mb * _MIB), int(self.max_megapixels * 1e6))


def predict(options: PredictOptions) -> tuple[list[Prediction], int]:
    """Score the readable images; return the predictions and how many files were skipped."""
    paths = image_files(list(options.images))
    batch_pixels = int(options.max_batch_megapixels * 1e6)
    batches = readable_batches(paths, options.batch_size, options.read_limits, batch_pixels)
    first = next(batches, None)  # before the model loads: nothing readable is an error
    if first is None:
        raise PredictError("no readable image among the given files")
    if options.model and is_model_uri(options.model):
        score = mlflow_model_scorer(options.model, options.signature, options.tracking_uri)
    elif options.model:
        score = local_scorer(Path(options.model), options.signature)
    elif options.rest:
        score = functools.partial(
            score_rest, options.rest, signature=options.signature, timeout=options.timeout
        )
    else:
        assert options.grpc is not None  # the parser requires one of the three
        score = functools.partial(score_grpc, options.grpc, options.model_name,
                                  signature=options.signature, timeout=options.timeout,
                                  label=options.label)  # fmt: skip
    predictions = []
    for files, blobs in itertools.chain([first], batches):
        predictions += _score_batch(score, files, blobs)
    if not predictions:
        raise PredictError("the model could decode none of the given images")
    return predictions, len(paths) - len(predictions)


def _score_batch(
    score: Callable[[list[bytes]], np.ndarray], files: list[Path], blobs: list[bytes]
) -> list[Prediction]:
    """Scores of one batch; when the model refuses it, each image alone, so only the
    images it cannot decode are skipped (and named)."""
    try:
        rows = list(zip(files, score(blobs), strict=True))
    except ImagesRefusedError as err:
        if len(blobs) == 1:
            print(f"skipped {files[0]}: the model cannot decode it ({err})", file=sys.stderr)
            return []
        return [p for f, b in zip(files, blobs, strict=True) for p in _score_batch(score, [f], [b])]
    return [
        Prediction(str(path), int(np.argmax(row)), float(np.max(row)), [float(x) for x in row])
        for path, row in rows
    ]


def print_table(predictions: list[Prediction]) -> None:
    width = max(len("file"), *(len(p.file) for p in predictions))
    print(f"{'file':{width}}  digit  probability")
    for p in predictions:
        print(f"{p.file:{width}}  {p.digit:>5}  {p.probability:>11.4f}")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (no usage block), like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    described = _OneLineParser(
        prog=invocation("predict"),  # ssgan-predict or python -m ssgan.predict, as invoked
        description="Read house-number digits in image files with an exported ssgan model. "
        "Exit status: 0 all scored, 1 some files skipped (reported on stderr), 2 error.",
    )
    described.add_argument("images", nargs="+", help="image files or folders")
    where = described.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--model",
        help="local SavedModel folder (or a folder of versions), or "
        "an MLflow model URI: models:/ssgan@production, runs:/<run_id>/model",
    )
    described.add_argument(
        "--tracking-uri",
        default=None,
        help="the MLflow store of a models:/ or runs:/ URI "
        "(default: tracking.uri of conf/, or MLFLOW_TRACKING_URI)",
    )
    where.add_argument(
        "--rest-url",
        "--rest",
        dest="rest",
        help="TF Serving REST URL, e.g. http://localhost:8501/v1/models/ssgan",
    )
    where.add_argument("--grpc", help="TF Serving gRPC address, e.g. localhost:8500")
    described.add_argument("--model-name", default="ssgan", help="served model name (gRPC)")
    described.add_argument("--label", default="",
                           help="version label to ask for over gRPC, e.g. stable or canary "
                           "(REST: put /labels/NAME in the URL)")  # fmt: skip
    described.add_argument("--signature", default="serving_default",
                           help="serving_default or predict_images")  # fmt: skip
    described.add_argument("--batch-size", type=int, default=64)
    described.add_argument("--timeout", type=float, default=30.0,
                           help="seconds per request, all of it: connect, send, whole answer "
                           "(default 30)")  # fmt: skip
    described.add_argument("--max-file-mb", type=float, default=MAX_FILE_MB,
                           help="skip (naming it) a file larger than this many MiB "
                           f"(default {MAX_FILE_MB:g})")  # fmt: skip
    described.add_argument("--max-megapixels", type=float, default=MAX_MEGAPIXELS,
                           help="skip (naming it) an image of more pixels, read from its "
                           f"header before decoding (default {MAX_MEGAPIXELS:g})")  # fmt: skip
    described.add_argument("--max-batch-megapixels", type=float, default=MAX_BATCH_MEGAPIXELS,
                           help="pixels of one request: a batch closes before it would pass "
                           f"this (default {MAX_BATCH_MEGAPIXELS:g})")  # fmt: skip
    described.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return described


# What each way to reach a model needs, for the line that refuses an empty one.
_WHERE = {
    "--model": "a SavedModel folder or an MLflow model URI such as models:/ssgan@production",
    "--rest-url": "a TF Serving REST URL such as http://localhost:8501/v1/models/ssgan",
    "--grpc": "a TF Serving gRPC address such as localhost:8500",
}


def check_options(options: PredictOptions) -> None:
    """Options that cannot work, refused before any file is read or model loaded."""
    for option, value in (("--model", options.model), ("--rest-url", options.rest),
                          ("--grpc", options.grpc)):  # fmt: skip
        if value is not None and not value.strip():
            raise PredictError(f"{option} is empty: give {_WHERE[option]}")
    if options.batch_size < 1:
        raise PredictError(f"--batch-size {options.batch_size} must be at least 1")
    for name, number, unit in (("--timeout", options.timeout, "seconds"),
                                ("--max-file-mb", options.max_file_mb, "MiB"),
                                ("--max-megapixels", options.max_megapixels, "megapixels"),
                                ("--max-batch-megapixels", options.max_batch_megapixels,
                                 "megapixels")):  # fmt: skip
        if not (number > 0 and math.isfinite(number)):
            raise PredictError(f"{name} {number:g} must be a positive number of {unit}")
    if options.signature not in IMAGE_SIGNATURES:
        raise PredictError(
            f"--signature {options.signature} is not one predict can send images to: allowed "
            f"{', '.join(IMAGE_SIGNATURES)} (the classify signature takes tf.Examples; "
            "see docs/serving.md for the Classify API)"
        )
    if options.rest:
        check_rest_url(options.rest)
    if options.label and not options.grpc:
        raise PredictError(
            f"--label {options.label} is for --grpc only: with --rest-url name the label in the "
            "URL (http://HOST:8501/v1/models/NAME/labels/LABEL); a local --model has none"
        )
