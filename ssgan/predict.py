"""Entry point: ``python -m ssgan.predict IMAGES... --model DIR`` (also ``ssgan-predict``).

Scores image files (JPEG, PNG, GIF, BMP; folders are searched) with one of:

* ``--model DIR`` -- a local SavedModel: a run's export, a promoted version
  (``serving/ssgan/3``) or a model folder (``serving/ssgan``: its highest version);
* ``--rest-url URL`` (or ``--rest``) -- a running TensorFlow Serving, REST API
  (``http://localhost:8501/v1/models/ssgan``), images sent as ``{"b64": ...}``;
* ``--grpc HOST:PORT`` -- a running TensorFlow Serving, gRPC PredictionService
  (``--label stable`` asks for a version label; over REST, ``.../labels/stable`` in the URL).

Prints one row per file (predicted digit and its probability), or JSON with ``--json``.
Files that cannot be read as images, and images the model cannot decode, are reported on
stderr and skipped; the others are still scored. Exit status: 0 every file scored,
1 some files skipped (the rest printed), 2 nothing scored or a bad option (one line).
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import math
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ssgan.cli import user_errors
from ssgan.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp"}
# Signatures that take encoded images under the input name ``images``.
IMAGE_SIGNATURES = ("serving_default", "predict_images")
EXIT_SOME_SKIPPED = 1


class PredictError(UserError):
    """Bad arguments or a model/server that cannot be reached or used."""


class ImagesRefusedError(PredictError):
    """The model (or server) refused a batch as invalid input, e.g. an image it cannot
    decode; scoring the images one by one finds which."""


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
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def read_images(files: list[Path]) -> tuple[list[Path], list[bytes]]:
    """Bytes of the files that are readable images; the others are reported and skipped."""
    good, blobs = [], []
    for path in files:
        try:
            data = path.read_bytes()
            with Image.open(path) as image:
                image.verify()
        except Image.DecompressionBombError as err:
            print(f"skipped {path}: image too large to decode safely ({err})", file=sys.stderr)
            continue
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            print(f"skipped {path}: not a readable image ({reason})", file=sys.stderr)
            continue
        good.append(path)
        blobs.append(data)
    return good, blobs


# -- backends: each maps a list of encoded images to (N, 10) probabilities ------------------


def resolve_model_dir(path: Path) -> Path:
    """A SavedModel folder, or the highest integer version inside a model folder."""
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted(
        (int(p.name) for p in path.glob("*") if p.name.isdigit() and p.is_dir()), reverse=True
    )
    if versions and (path / str(versions[0]) / "saved_model.pb").is_file():
        return path / str(versions[0])
    raise PredictError(
        f"--model {path} is neither a SavedModel (no saved_model.pb) nor a folder of "
        "numbered versions"
    )


def local_scorer(model_dir: Path, signature: str) -> Callable[[list[bytes]], np.ndarray]:
    """Load the SavedModel once; return a function scoring batches of encoded images."""
    import tensorflow as tf

    resolved = resolve_model_dir(model_dir)
    try:
        loaded = tf.saved_model.load(str(resolved))
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise PredictError(f"--model {resolved} does not load: {str(err).splitlines()[0]}") from err
    if signature not in loaded.signatures:
        raise PredictError(
            f"--signature {signature} is not in the model: it has {', '.join(loaded.signatures)}"
        )
    serve = loaded.signatures[signature]

    def score(blobs: list[bytes]) -> np.ndarray:
        try:
            return serve(images=tf.constant(blobs))["scores"].numpy()
        except tf.errors.InvalidArgumentError as err:
            raise ImagesRefusedError(_first_reason(err.message)) from err

    return score


def _first_reason(message: str) -> str:
    """The informative line of a TF error (not "Graph execution error:" or a node name)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if not line.startswith(("Graph execution error", "Detected at node", "<stack", "[["))
    ]
    return (useful or lines or ["invalid input"])[0][:300]


def check_rest_url(url: str) -> None:
    """TF Serving's REST model URL: ``http(s)://HOST:PORT/v1/models/NAME[/versions/N]``."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as err:
        raise PredictError(f"--rest-url {url} is not a URL ({err})") from err
    segments = [s for s in parts.path.split("/") if s]
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(segments) < 3
        or segments[:2] != ["v1", "models"]
    ):
        raise PredictError(
            f"--rest-url {url} does not name a model: expected "
            "http://HOST:8501/v1/models/NAME (optionally /versions/N)"
        )


def rest_request_body(blobs: list[bytes], signature: str) -> dict:
    """TF Serving's REST predict body: binary inputs as ``{"b64": ...}`` instances."""
    return {
        "signature_name": signature,
        "instances": [{"b64": base64.b64encode(blob).decode("ascii")} for blob in blobs],
    }


def scores_from_rest_response(response: dict) -> np.ndarray:
    """``predictions`` is a list of score rows (one output) or of {"scores": ...} objects."""
    if "predictions" not in response:
        raise PredictError(f"the server answered without predictions: {response}")
    rows = [row["scores"] if isinstance(row, dict) else row for row in response["predictions"]]
    return np.asarray(rows, np.float32)


def score_rest(url: str, blobs: list[bytes], *, signature: str, timeout: float) -> np.ndarray:
    body = json.dumps(rest_request_body(blobs, signature)).encode()
    request = urllib.request.Request(
        url.rstrip("/") + ":predict", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return scores_from_rest_response(json.loads(reply.read()))
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:300]
        if err.code == 400:  # TF Serving: the request's input was invalid
            raise ImagesRefusedError(f"TF Serving at {url} answered 400: {detail}") from err
        raise PredictError(f"TF Serving at {url} answered {err.code}: {detail}") from err
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise PredictError(f"cannot reach TF Serving at {url} ({err})") from err


def score_grpc(
    target: str,
    model_name: str,
    blobs: list[bytes],
    *,
    signature: str,
    timeout: float,
    label: str = "",
) -> np.ndarray:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if label:  # TF Serving's version labels (models.config): stable, canary
        request.model_spec.version_label = label
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(blobs, dtype=tf.string))
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            reply = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise ImagesRefusedError(f"TF Serving at {target}: {err.details()}") from err
            raise PredictError(
                f"TF Serving at {target} failed: {err.code().name} {err.details()}"
            ) from err
    return tf.make_ndarray(reply.outputs["scores"])


# -- the command ------------------------------------------------------------------------------


def predict(args: argparse.Namespace) -> tuple[list[Prediction], int]:
    """Score the readable images; return the predictions and how many files were skipped."""
    paths = image_files(args.images)
    files, blobs = read_images(paths)
    if not blobs:
        raise PredictError("no readable image among the given files")
    if args.model:
        score = local_scorer(Path(args.model), args.signature)
    elif args.rest:
        score = functools.partial(
            score_rest, args.rest, signature=args.signature, timeout=args.timeout
        )
    else:
        score = functools.partial(score_grpc, args.grpc, args.model_name,
                                  signature=args.signature, timeout=args.timeout,
                                  label=args.label)  # fmt: skip
    predictions = []
    for start in range(0, len(blobs), args.batch_size):
        batch = slice(start, start + args.batch_size)
        predictions += _score_batch(score, files[batch], blobs[batch])
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
        prog="python -m ssgan.predict",
        description="Read house-number digits in image files with an exported ssgan model. "
        "Exit status: 0 all scored, 1 some files skipped (reported on stderr), 2 error.",
    )
    described.add_argument("images", nargs="+", help="image files or folders")
    where = described.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="local SavedModel folder (or a folder of versions)")
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
    described.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    described.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return described


def check_args(args: argparse.Namespace) -> None:
    """Options that cannot work, refused before any file is read or model loaded."""
    if args.batch_size < 1:
        raise PredictError(f"--batch-size {args.batch_size} must be at least 1")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise PredictError(f"--timeout {args.timeout:g} must be a positive number of seconds")
    if args.signature not in IMAGE_SIGNATURES:
        raise PredictError(
            f"--signature {args.signature} is not one predict can send images to: allowed "
            f"{', '.join(IMAGE_SIGNATURES)} (the classify signature takes tf.Examples; "
            "see docs/serving.md for the Classify API)"
        )
    if args.rest:
        check_rest_url(args.rest)
    if args.label and not args.grpc:
        raise PredictError(
            f"--label {args.label} is for --grpc only: with --rest-url name the label in the "
            "URL (http://HOST:8501/v1/models/NAME/labels/LABEL); a local --model has none"
        )


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with user_errors():
        check_args(args)
        predictions, skipped = predict(args)
    if args.json:
        print(json.dumps([p.__dict__ for p in predictions], indent=2))
    else:
        print_table(predictions)
    if skipped:
        sys.stdout.flush()
        print(f"{skipped} of {skipped + len(predictions)} files skipped", file=sys.stderr)
        sys.exit(EXIT_SOME_SKIPPED)


if __name__ == "__main__":
    main()
