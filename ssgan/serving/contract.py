"""The serving contract (signatures, dtypes, shapes) and the check that a SavedModel meets
it, loads, and replays its warm-up requests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from ssgan.errors import UserError, first_line
from ssgan.serving.warmup import MAX_WARMUP_RECORDS, WARMUP_FILE, read_warmup_requests

if TYPE_CHECKING:
    from tensorflow.core.protobuf.meta_graph_pb2 import TensorInfo
    from tensorflow.python.trackable.autotrackable import AutoTrackable

NUM_CLASSES = 10
CLASSIFY_METHOD = "tensorflow/serving/classify"


class ExportError(UserError):
    """An exported model that does not load or does not meet the serving contract."""


# signature -> (method, {input: (dtype, shape)}, {output: (dtype, shape)})
CONTRACT = {
    "predict_images": (
        "tensorflow/serving/predict",
        {"images": ("DT_STRING", [-1])},
        {"scores": ("DT_FLOAT", [-1, NUM_CLASSES])},
    ),
    "serving_default": (
        "tensorflow/serving/predict",
        {"images": ("DT_STRING", [-1])},
        {"scores": ("DT_FLOAT", [-1, NUM_CLASSES]), "classes": ("DT_INT64", [-1])},
    ),
    "classify": (
        CLASSIFY_METHOD,
        {"inputs": ("DT_STRING", [-1])},
        {"classes": ("DT_STRING", [-1, NUM_CLASSES]), "scores": ("DT_FLOAT", [-1, NUM_CLASSES])},
    ),
}


def _describe(infos: Mapping[str, TensorInfo]) -> dict[str, tuple[str, list[int]]]:
    from tensorflow.core.framework import types_pb2

    return {
        name: (types_pb2.DataType.Name(info.dtype), [d.size for d in info.tensor_shape.dim])
        for name, info in infos.items()
    }


def verify_saved_model(saved_model_dir: Path) -> None:
    """Raise ExportError unless the directory is a loadable SavedModel meeting CONTRACT,
    whose warm-up records (if any) parse and run."""
    saved_model_dir = Path(saved_model_dir)
    pb = saved_model_dir / "saved_model.pb"
    if not pb.is_file():
        raise ExportError(f"{saved_model_dir} is not a SavedModel: it has no saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except Exception as err:  # protobuf raises its own DecodeError
        raise ExportError(f"{pb} is not a readable SavedModel ({err})") from err
    signatures = proto.meta_graphs[0].signature_def if proto.meta_graphs else {}
    for name, (method, inputs, outputs) in CONTRACT.items():
        if name not in signatures:
            raise ExportError(f"{saved_model_dir}: signature '{name}' is missing")
        found = signatures[name]
        if found.method_name != method:
            raise ExportError(
                f"{saved_model_dir}: signature '{name}' has method {found.method_name}, "
                f"expected {method}"
            )
        for kind, wanted, actual in (
            ("inputs", inputs, _describe(found.inputs)),
            ("outputs", outputs, _describe(found.outputs)),
        ):
            if actual != wanted:
                raise ExportError(
                    f"{saved_model_dir}: signature '{name}' {kind} are {actual}, expected {wanted}"
                )
    try:
        loaded = tf.saved_model.load(str(saved_model_dir))
    except Exception as err:  # any load failure means TF Serving would refuse it too
        raise ExportError(f"{saved_model_dir} does not load: {first_line(err)}") from err
    _check_warmup(saved_model_dir / "assets.extra" / WARMUP_FILE, loaded)


def _check_warmup(path: Path, loaded: AutoTrackable) -> None:
    """TF Serving refuses a version whose warm-up file is broken: replay it here first."""
    if not path.exists():
        return
    try:
        logs = read_warmup_requests(path)
    except Exception as err:  # a corrupt TFRecord or proto
        raise ExportError(f"{path} is not a file of PredictionLog records ({err})") from err
    if not logs or len(logs) > MAX_WARMUP_RECORDS:
        raise ExportError(f"{path} holds {len(logs)} records: expected 1..{MAX_WARMUP_RECORDS}")
    for log in logs:
        if log.HasField("predict_log"):
            request = log.predict_log.request
            signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
            images = tf.make_ndarray(request.inputs["images"])
            signature(images=tf.constant(images))
        elif log.HasField("classify_log"):
            examples = log.classify_log.request.input.example_list.examples
            serialized = [example.SerializeToString() for example in examples]
            loaded.signatures["classify"](inputs=tf.constant(serialized))
        else:
            raise ExportError(f"{path}: a record is neither a Predict nor a Classify request")
