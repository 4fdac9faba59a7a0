"""TF Serving's warm-up requests (``assets.extra/tf_serving_warmup_requests``): written
at export, replayed by the server when it loads a version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

from ssgan.serving.images import encode_jpeg

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many
WARMUP_BATCH = 8  # images per batched warm-up request
# TF Serving answers warm-up requests whatever model name they carry; this one is informative.
WARMUP_MODEL_NAME = "ssgan"


def _warmup_jpegs(images: np.ndarray) -> list[bytes]:
    """Real-looking JPEG requests: 32x32 crops, plus a larger colour and a grey photo so
    the resize and grey-to-RGB branches of the graph are warmed up too."""
    crops = np.asarray(images[:WARMUP_BATCH], np.uint8)
    if not len(crops):
        raise ValueError("warm-up requests need at least one image")
    larger = Image.fromarray(crops[0]).resize((96, 64), Image.Resampling.BILINEAR)
    grey = larger.convert("L")
    return [encode_jpeg(image) for image in crops] + [
        encode_jpeg(np.asarray(larger)),
        encode_jpeg(np.asarray(grey)),
    ]


def _predict_log(signature: str, jpegs: list[bytes]) -> prediction_log_pb2.PredictionLog:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = WARMUP_MODEL_NAME
    request.model_spec.signature_name = signature
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(jpegs, dtype=tf.string))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def _classify_log(jpegs: list[bytes]) -> prediction_log_pb2.PredictionLog:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = WARMUP_MODEL_NAME
    request.model_spec.signature_name = "classify"
    for jpeg in jpegs:
        example = request.input.example_list.examples.add()
        example.features.feature["image/encoded"].bytes_list.value.append(jpeg)
    return prediction_log_pb2.PredictionLog(
        classify_log=prediction_log_pb2.ClassifyLog(request=request)
    )


def write_warmup_requests(path: Path, images: np.ndarray) -> int:
    """TF Serving replays these ``PredictionLog``s when it loads a version, so the first
    real request does not pay for graph warm-up: for each signature, JPEG requests of
    one image and of a batch (the first ``WARMUP_BATCH`` of ``images``, uint8 crops that
    look like real requests, plus a larger photo and a grey one). Returns the count."""
    jpegs = _warmup_jpegs(images)
    logs = [_predict_log(signature, batch)
            for signature in ("serving_default", "predict_images")
            for batch in (jpegs[:1], jpegs)]  # fmt: skip
    logs += [_classify_log(jpegs[:1]), _classify_log(jpegs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs[:MAX_WARMUP_RECORDS]:
            writer.write(log.SerializeToString())
    return len(logs)


def read_warmup_requests(path: Path) -> list[prediction_log_pb2.PredictionLog]:
    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs
