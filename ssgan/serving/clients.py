"""Clients that map encoded images to class scores: a local SavedModel, or TF Serving over
REST or gRPC. A request the model refuses as input raises :class:`ImagesRefusedError`."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ssgan.errors import UserError, first_line, tf_reason

MODEL_URI_SCHEMES = ("models:/", "runs:/")
# A REST answer holds ten scores an image; anything near this size is not TF Serving's.
MAX_ANSWER_BYTES = 64 << 20
_CHUNK_BYTES = 1 << 16


class PredictError(UserError):
    """Bad arguments or a model/server that cannot be reached or used."""


class ImagesRefusedError(PredictError):
    """The model (or server) refused a batch as invalid input, e.g. an image it cannot
    decode; scoring the images one by one finds which."""


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
        raise PredictError(f"--model {resolved} does not load: {first_line(err)}") from err
    if signature not in loaded.signatures:
        raise PredictError(
            f"--signature {signature} is not in the model: it has {', '.join(loaded.signatures)}"
        )
    serve = loaded.signatures[signature]
    _check_signature(resolved, signature, serve)

    def score(blobs: list[bytes]) -> np.ndarray:
        try:
            return serve(images=tf.constant(blobs))["scores"].numpy()
        except tf.errors.InvalidArgumentError as err:
            raise ImagesRefusedError(tf_reason(err.message) or "invalid input") from err

    return score


def is_model_uri(model: str) -> bool:
    """Whether ``--model`` names an MLflow model (``models:/…``, ``runs:/…``), not a folder."""
    return model.startswith(MODEL_URI_SCHEMES)


def mlflow_model_scorer(
    model_uri: str, signature: str, tracking_uri: str | None
) -> Callable[[list[bytes]], np.ndarray]:
    """The SavedModel of an MLflow model (a registry alias or version, a run's model),
    downloaded from ``tracking_uri`` (default: ``tracking.uri`` of conf/) and loaded."""
    from ssgan.cli import default_tracking
    from ssgan.tracking.mlflow_model import download_model, saved_model_in
    from ssgan.tracking.store import TrackingStore

    tracking = default_tracking(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="ssgan-predict-") as scratch:
        store = TrackingStore(tracking)
        local = saved_model_in(download_model(store, model_uri, Path(scratch)))
        # Loaded into memory before the download is removed.
        return local_scorer(local, signature)


def _check_signature(model_dir: Path, name: str, serve: Any) -> None:
    """Refuse, in one line, a signature that does not take encoded images as ``images``
    and return ``scores`` (a SavedModel that is not an ssgan export, say)."""
    import tensorflow as tf

    inputs = serve.structured_input_signature[1]
    outputs = serve.structured_outputs
    takes_images = set(inputs) == {"images"} and inputs["images"].dtype == tf.string
    if not takes_images or "scores" not in outputs:
        takes = ", ".join(f"{k} ({v.dtype.name})" for k, v in sorted(inputs.items())) or "nothing"
        raise PredictError(
            f"--model {model_dir} is not an ssgan export: its signature '{name}' takes {takes} "
            f"and returns {', '.join(sorted(outputs)) or 'nothing'}, not encoded images as "
            "'images' and 'scores' (see docs/serving.md for the contract)"
        )


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


def scores_from_rest_response(response: Any) -> np.ndarray:
    """``predictions`` is a list of score rows (one output) or of {"scores": ...} objects."""
    if not isinstance(response, dict) or "predictions" not in response:
        raise PredictError(f"the server answered without predictions: {response}")
    rows = [row["scores"] if isinstance(row, dict) else row for row in response["predictions"]]
    return np.asarray(rows, np.float32)


def score_rest(url: str, blobs: list[bytes], *, signature: str, timeout: float) -> np.ndarray:
    """Scores of ``blobs`` from TF Serving's REST API; ``timeout`` bounds the whole request."""
    body = json.dumps(rest_request_body(blobs, signature)).encode()
    try:
        status, answer = _post_within(url.rstrip("/") + ":predict", body, timeout)
    except (OSError, ValueError, http.client.HTTPException) as err:
        # HTTPException: a server that hangs up mid-answer (IncompleteRead, BadStatusLine).
        raise PredictError(f"cannot reach TF Serving at {url} ({err})") from err
    except _DeadlinePassedError as err:
        raise _timed_out(url, timeout) from err
    if len(answer) > MAX_ANSWER_BYTES:
        raise PredictError(f"TF Serving at {url} answered more than {MAX_ANSWER_BYTES} bytes")
    if status >= 300:
        detail = answer.decode(errors="replace")[:300]
        if status == 400:  # TF Serving: the request's input was invalid
            raise ImagesRefusedError(f"TF Serving at {url} answered 400: {detail}")
        raise PredictError(f"TF Serving at {url} answered {status}: {detail}")
    try:
        parsed = json.loads(answer)
    except ValueError as err:
        raise PredictError(f"TF Serving at {url} answered {status} but not with JSON") from err
    return scores_from_rest_response(parsed)


def _timed_out(server: str, timeout: float) -> PredictError:
    return PredictError(f"no complete answer from TF Serving at {server} within --timeout "
                        f"{timeout:g} s")  # fmt: skip


class _DeadlinePassedError(Exception):
    """The deadline passed before the exchange ended."""


def _post_within(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    """POST ``body`` (JSON) to ``url``: the answer's status and body, all within ``timeout``
    seconds (name lookup, connect, send, headers, body), or :class:`_DeadlinePassedError`.

    A socket timeout bounds each read, so a server that trickles a byte a second never
    trips it. The exchange runs in a daemon thread; at the deadline the caller stops
    waiting and shuts its socket down, which ends a read in progress at once. The server
    is reached directly (http.client), not through a proxy from the environment."""
    parts = urllib.parse.urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=timeout)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", "Connection": "close"}
    answers: list[tuple[int, bytes]] = []
    failures: list[BaseException] = []
    opened: list[socket.socket] = []  # kept: the connection lets go of it at the answer
    gave_up = threading.Event()

    def exchange() -> None:
        try:
            connection.connect()
            opened.append(connection.sock)
            if gave_up.is_set():  # connected after the caller looked for a socket to cut
                return
            connection.request("POST", target, body, headers)
            reply = connection.getresponse()
            answers.append((reply.status, _read_capped(reply, gave_up)))
        except BaseException as err:  # raised again in the caller's thread
            failures.append(err)
        finally:
            connection.close()

    worker = threading.Thread(target=exchange, name="ssgan-rest-request", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        gave_up.set()
        for sock in opened:
            with contextlib.suppress(OSError):  # already closed by the worker
                sock.shutdown(socket.SHUT_RDWR)
        raise _DeadlinePassedError
    if failures:
        raise failures[0]
    return answers[0]


def _read_capped(reply: http.client.HTTPResponse, gave_up: threading.Event) -> bytes:
    """The body a chunk at a time (``read1``: what has arrived, never waiting for a whole
    buffer) until its end, ``MAX_ANSWER_BYTES`` + 1 bytes (the caller refuses that), or
    the caller giving up."""
    chunks: list[bytes] = []
    size = 0
    while not gave_up.is_set() and size <= MAX_ANSWER_BYTES:
        chunk = reply.read1(min(_CHUNK_BYTES, MAX_ANSWER_BYTES + 1 - size))
        if not chunk:
            break
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def score_grpc(
    target: str,
    model_name: str,
    blobs: list[bytes],
    *,
    signature: str,
    timeout: float,
    label: str = "",
) -> np.ndarray:
    """Scores of ``blobs`` from TF Serving's gRPC PredictionService; ``timeout`` is the
    call's deadline (connecting included)."""
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
        except grpc.RpcError as err:  # ``timeout`` is the whole call's deadline
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise _timed_out(target, timeout) from err
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise ImagesRefusedError(f"TF Serving at {target}: {err.details()}") from err
            raise PredictError(
                f"TF Serving at {target} failed: {err.code().name} {err.details()}"
            ) from err
    return tf.make_ndarray(reply.outputs["scores"])
