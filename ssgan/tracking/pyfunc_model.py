"""The MLflow pyfunc face of an exported SavedModel ("models from code"): image bytes in,
the digit and the ten class scores out, through the SavedModel's ``serving_default``.

MLflow copies this file into every logged model and runs it, alone, wherever the model is
loaded (``mlflow.pyfunc.load_model``, ``mlflow models serve``): it imports nothing of
ssgan, only what scoring needs. The SavedModel itself is the model's ``saved_model``
artifact, byte for byte the folder TF Serving loads.
"""

from __future__ import annotations

import base64
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from mlflow.pyfunc import PythonModel

ARTIFACT = "saved_model"  # the key of the SavedModel in the model's artifacts
INPUT_COLUMN = "image"  # encoded JPEG/PNG/GIF/BMP bytes, one image per row


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
        images = [_as_bytes(value) for value in _column(model_input)]
        if not images:
            return pd.DataFrame({"digit": np.zeros(0, np.int64), "scores": []})
        out = self._serve(images=tf.constant(images, dtype=tf.string))
        scores = out["scores"].numpy()
        return pd.DataFrame({"digit": out["classes"].numpy(), "scores": list(scores)})


def _column(model_input: Any) -> list[Any]:
    """The image values of a DataFrame (its ``image`` column, else its only one), a dict,
    or a list/array of bytes."""
    if isinstance(model_input, pd.DataFrame):
        column = INPUT_COLUMN if INPUT_COLUMN in model_input else model_input.columns[0]
        return list(model_input[column])
    if isinstance(model_input, dict):
        return list(model_input[INPUT_COLUMN])
    return list(np.asarray(model_input, dtype=object).reshape(-1))


def _as_bytes(value: Any) -> bytes:
    # The scoring server decodes base64 for a binary column of the signature; a caller
    # without the signature (plain JSON, say) may still send base64 text.
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(value)


mlflow.models.set_model(SavedModelDigits())
