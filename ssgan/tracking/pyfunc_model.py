"""The MLflow pyfunc face of an exported SavedModel ("models from code"): image bytes in,
the digit and the ten class scores out, through the SavedModel's ``serving_default``.

MLflow copies this file into every logged model and runs it, alone, wherever the model is
loaded (``mlflow.pyfunc.load_model``, ``mlflow models serve``): it imports nothing of
ssgan, only what scoring needs. The SavedModel itself is the model's ``saved_model``
artifact, byte for byte the folder TF Serving loads.

Every request format of ``mlflow models serve`` reaches :meth:`SavedModelDigits.predict`
with the same image bytes: MLflow base64-decodes the binary ``image`` column itself only
in the DataFrame formats (``dataframe_split``, ``dataframe_records``, CSV); in the tensor
formats (``inputs``, ``instances``) the base64 text arrives as bytes, which are decoded
here when they are not an image already. What is neither an image nor base64 text of one
is answered with one line (an MLflow ``INVALID_PARAMETER_VALUE`` error), not TensorFlow's
stack trace.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

ARTIFACT = "saved_model"  # the key of the SavedModel in the model's artifacts
INPUT_COLUMN = "image"  # encoded JPEG/PNG/GIF/BMP bytes, one image per row
# The first bytes of the formats the serving graph decodes (tf.io.decode_image): JPEG,
# PNG, GIF, BMP, and JPEG XL (bare and in its container); WebP is RIFF….WEBP.
IMAGE_MAGIC: tuple[bytes, ...] = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
IMAGE_MAGIC += (b"BM", b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")


class SavedModelDigits(PythonModel):
    """Scores encoded images with the SavedModel's ``serving_default`` signature."""

    # No type hints on these two: MLflow reads predict's hints as a schema, and the
    # signature logged with the model is the schema. The flag is MLflow's own switch
    # (set on its ChatModel) that skips hint-based validation and its "Add type hints"
    # warning, printed wherever the model is logged or loaded.
    _skip_type_hint_validation = True

    def load_context(self, context):  # type: ignore[no-untyped-def]
        self._saved_model = tf.saved_model.load(context.artifacts[ARTIFACT])
        self._serve = self._saved_model.signatures["serving_default"]

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        images = [image_bytes(value, i) for i, value in enumerate(_column(model_input))]
        if not images:
            return pd.DataFrame({"digit": np.zeros(0, np.int64), "scores": []})
        try:
            out = self._serve(images=tf.constant(images, dtype=tf.string))
        except tf.errors.InvalidArgumentError as err:  # e.g. a truncated JPEG
            raise BadImageError(f"an image could not be decoded: {tf_reason(err)}") from None
        scores = out["scores"].numpy()
        return pd.DataFrame({"digit": out["classes"].numpy(), "scores": list(scores)})


class BadImageError(MlflowException):
    """A request's image that cannot be scored: HTTP 400 with this one line as the whole
    message. (The scoring server prefixes a failed prediction's message with the whole
    request data, which for images is kilobytes of bytes; that prefix is not kept.)"""

    def __init__(self, reason: str) -> None:
        self._reason = reason
        super().__init__(reason, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, _value: str) -> None:
        pass  # keep the one line


def _column(model_input: Any) -> list[Any]:
    """The image values of a DataFrame (its ``image`` column, else its only one), a dict,
    or a list/array of bytes."""
    if isinstance(model_input, pd.DataFrame):
        column = INPUT_COLUMN if INPUT_COLUMN in model_input else model_input.columns[0]
        return list(model_input[column])
    if isinstance(model_input, dict):
        return list(np.asarray(model_input[INPUT_COLUMN], dtype=object).reshape(-1))
    return list(np.asarray(model_input, dtype=object).reshape(-1))


def image_bytes(value: Any, index: int = 0) -> bytes:
    """The encoded image in ``value``: image bytes as they are, base64 text (str or bytes)
    decoded. One-line :class:`BadImageError` for anything else."""
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    elif not isinstance(value, (bytes, bytearray, memoryview)):
        raise BadImageError(
            f"image {index} is of type {type(value).__name__}, not encoded image bytes "
            "(send JPEG/PNG/GIF/BMP bytes, base64-encoded in JSON)"
        )
    data = bytes(value)
    if is_image(data):
        return data
    try:
        decoded = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if is_image(decoded):
        return decoded
    if decoded:  # base64 text, but not of an image
        what = f"base64 text of {len(decoded)} bytes starting with {decoded[:12]!r}"
    else:
        what = f"{len(data)} bytes" + (f" starting with {data[:12]!r}" if data else "")
    raise BadImageError(
        f"image {index} is not a JPEG, PNG, GIF or BMP image, nor base64 text of one ({what})"
    )


def is_image(data: bytes) -> bool:
    """Whether ``data`` starts as an image the serving graph decodes."""
    return data.startswith(IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def tf_reason(err: tf.errors.OpError) -> str:
    """TensorFlow's reason in one line, without the graph's node and stack lines."""
    lines = [line.strip() for line in str(err.message).splitlines()]
    kept = [
        line.split(" [[", 1)[0].split("\t [[", 1)[0].strip()
        for line in lines
        if line
        and not line.startswith(("[[", "Graph execution error", "Detected at node", "File "))
        and not line.startswith("<stack traces")
    ]
    return (kept[-1] if kept else "invalid image")[:300]


mlflow.models.set_model(SavedModelDigits())
