"""Clients that map encoded images to class scores: a local SavedModel, or TF Serving over
REST or gRPC. A request the model refuses as input raises :class:`ImagesRefusedError`."""

from __future__ import annotations

import base64
import json
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ssgan.errors import UserError, first_line

MODEL_URI_SCHEMES = ("models:/", "runs:/")


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
            raise ImagesRefusedError(_first_reason(err.message)) from err

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
