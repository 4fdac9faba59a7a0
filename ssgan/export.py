"""SavedModel export for TensorFlow Serving, and its verification.

Signatures (the serving contract):

* ``predict_images`` -- input ``images`` (DT_STRING [-1], encoded JPEG/PNG of any size,
  grey or colour), output ``scores`` (DT_FLOAT [-1, 10] probabilities); the names the
  original tutorial's gRPC client uses.
* ``serving_default`` -- the same input; outputs ``scores`` and ``classes`` (the digit).
* ``classify`` -- TF Serving's Classify API (method ``tensorflow/serving/classify``): one
  input ``inputs`` of serialized ``tf.Example``s with the image under ``image/encoded``;
  outputs ``classes`` (DT_STRING labels "0".."9", [-1, 10]) and ``scores`` ([-1, 10]).

Preprocessing in the graph is training's: decode to RGB, resize to 32x32 (only when the
image is not already 32x32, so a 32x32 PNG is bit-exact), map pixels to [-1, 1]. The
discriminator runs in inference mode, so an image's scores never depend on its batch.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from omegaconf import DictConfig
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

from ssgan.errors import UserError
from ssgan.models.networks import build_discriminator
from ssgan.preprocess import IMAGE_SIZE, to_model_range

NUM_CLASSES = 10
CLASSIFY_METHOD = "tensorflow/serving/classify"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many
WARMUP_BATCH = 8  # images per batched warm-up request
# TF Serving answers warm-up requests whatever model name they carry; this one is informative.
WARMUP_MODEL_NAME = "ssgan"


class ExportError(UserError):
    """An exported model that does not load or does not meet the serving contract."""


# -- the serving graph --------------------------------------------------------------------


def _decode_one(encoded: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes -> float32 [32, 32, 3] pixels in [0, 255]."""
    tf.debugging.assert_positive(
        tf.strings.length(encoded), message="image bytes are empty: send an encoded JPEG or PNG"
    )
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    shape = tf.shape(image)
    tf.debugging.assert_positive(shape[0] * shape[1], message="image has zero width or height")
    image.set_shape([None, None, 3])
    pixels = tf.cast(image, tf.float32)
    already = tf.logical_and(tf.equal(shape[0], IMAGE_SIZE), tf.equal(shape[1], IMAGE_SIZE))
    return tf.cond(
        already,
        lambda: tf.reshape(pixels, [IMAGE_SIZE, IMAGE_SIZE, 3]),
        lambda: tf.image.resize(pixels, [IMAGE_SIZE, IMAGE_SIZE], antialias=True),
    )


_VALUES = IMAGE_SIZE * IMAGE_SIZE * 3  # uint8 values of one decoded 32x32 RGB image


def _decode_raw(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The first 32*32*3 decoded uint8 values (zero-padded) and the image's [h, w]."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    values = tf.reshape(image, [-1])[:_VALUES]
    return tf.pad(values, [[0, _VALUES - tf.size(values)]]), tf.shape(image)[:2]


def decode_images(images: tf.Tensor) -> tf.Tensor:
    """A batch of encoded images -> float32 [N, 32, 32, 3] in [-1, 1] (empty batch: [0, ...]).

    Fast path: one loop decodes every image to uint8 (no per-image float copy, no
    branch); when all are 32x32, the batch is cast at once. Any other size in the batch:
    :func:`_decode_one` per image (decode again, resize). Both give the same pixels.
    """
    not_empty = tf.debugging.assert_positive(
        tf.strings.length(images), message="image bytes are empty: send an encoded JPEG or PNG"
    )
    with tf.control_dependencies([not_empty]):  # this error first, not the decoder's
        images = tf.identity(images)
    values, sizes = tf.map_fn(
        _decode_raw,
        images,
        fn_output_signature=(tf.TensorSpec([_VALUES], tf.uint8), tf.TensorSpec([2], tf.int32)),
        parallel_iterations=32,
    )

    def all_32x32() -> tf.Tensor:
        return tf.cast(tf.reshape(values, [-1, IMAGE_SIZE, IMAGE_SIZE, 3]), tf.float32)

    def any_size() -> tf.Tensor:
        return tf.map_fn(
            _decode_one,
            images,
            fn_output_signature=tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32),
            parallel_iterations=32,
        )

    pixels = tf.cond(tf.reduce_all(tf.equal(sizes, IMAGE_SIZE)), all_32x32, any_size)
    return to_model_range(pixels)


_EXAMPLE_SPEC = {"image/encoded": tf.io.FixedLenFeature([], tf.string)}


def parse_image_examples(serialized: tf.Tensor) -> tf.Tensor:
    """Serialized ``tf.Example``s -> their ``image/encoded`` bytes.

    ParseExample's own error for bytes that are not an Example quotes those bytes, which
    Python cannot even turn into an exception message (UnicodeDecodeError). So each input
    is first parsed on its own with errors dropped, and a count that falls short raises a
    plain InvalidArgument naming what was expected.
    """
    parsed = (
        tf.data.Dataset.from_tensor_slices(serialized)
        .map(lambda one: tf.io.parse_single_example(one, _EXAMPLE_SPEC)["image/encoded"])
        .ignore_errors()
        .reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    )
    check = tf.debugging.assert_equal(
        parsed,
        tf.size(serialized, out_type=tf.int64),
        message="inputs must be serialized tf.Example protos with the encoded image under "
        "image/encoded; some are not",
        summarize=1,
    )
    with tf.control_dependencies([check]):
        return tf.io.parse_example(serialized, _EXAMPLE_SPEC)["image/encoded"]


class ServingModule(tf.Module):
    """Holds the classifier and the three serving functions."""

    def __init__(self, classifier: tf.keras.Model) -> None:
        super().__init__()
        self.classifier = classifier
        self.labels = tf.constant([str(d) for d in range(NUM_CLASSES)])

    def _scores(self, images: tf.Tensor) -> tf.Tensor:
        def network() -> tf.Tensor:
            logits, _ = self.classifier(decode_images(images), training=False)
            return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

        # An empty request gets an empty answer (oneDNN kernels reject empty batches).
        return tf.cond(tf.size(images) > 0, network, lambda: tf.zeros([0, NUM_CLASSES], tf.float32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def predict_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": self._scores(images)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serving_default(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        scores = self._scores(images)
        return {"scores": scores, "classes": tf.argmax(scores, axis=-1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        scores = self._scores(parse_image_examples(inputs))
        classes = tf.tile(self.labels[tf.newaxis, :], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}


def export_saved_model(
    classifier: tf.keras.Model, export_dir: Path, *, warmup_images: np.ndarray | None = None
) -> Path:
    """Write the SavedModel directly in ``export_dir`` and check it against the contract."""
    export_dir = Path(export_dir)
    if export_dir.exists() and (not export_dir.is_dir() or any(export_dir.iterdir())):
        raise ExportError(f"export directory {export_dir} already exists and is not empty")
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build and verify in a sibling folder, then rename: a failed export leaves nothing.
    staging = Path(tempfile.mkdtemp(prefix=f".{export_dir.name}.partial-", dir=export_dir.parent))
    try:
        module = ServingModule(classifier)
        signatures = {
            "predict_images": module.predict_images,
            "serving_default": module.serving_default,
            "classify": module.classify,
        }
        tf.saved_model.save(module, str(staging), signatures=signatures)
        _set_method_name(staging, "classify", CLASSIFY_METHOD)
        write_warmup_requests(staging / "assets.extra" / WARMUP_FILE, warmup_images)
        verify_saved_model(staging)
        if export_dir.exists():
            export_dir.rmdir()
        staging.rename(export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir


def _set_method_name(export_dir: Path, signature: str, method: str) -> None:
    """TF2's saver marks every signature as Predict; TF Serving's Classify API needs the
    classify method name on the SignatureDef, so set it in saved_model.pb."""
    path = export_dir / "saved_model.pb"
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(path.read_bytes())
    for meta_graph in proto.meta_graphs:
        meta_graph.signature_def[signature].method_name = method
    partial = path.with_name("saved_model.pb.partial")
    partial.write_bytes(proto.SerializeToString(deterministic=True))
    partial.replace(path)
    _rewrite_fingerprint(export_dir)


def _rewrite_fingerprint(export_dir: Path) -> None:
    """fingerprint.pb holds a checksum of saved_model.pb; recompute it after the edit so
    tools that identify models by fingerprint see this file, not the pre-edit one."""
    try:
        from tensorflow.python.saved_model import fingerprinting_utils
    except ImportError:  # a TF without it: a stale fingerprint is worse than none
        (export_dir / "fingerprint.pb").unlink(missing_ok=True)
        return
    fingerprinting_utils.write_fingerprint(str(export_dir))


# -- warm-up requests ---------------------------------------------------------------------


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _warmup_images(images: np.ndarray | None) -> np.ndarray:
    if images is not None and len(images):
        return np.asarray(images[:WARMUP_BATCH], np.uint8)
    # No real images at hand: synthetic house-number crops look like real requests.
    from ssgan.data.synthetic import render_digit

    return np.stack([render_digit(0, "test", index)[0] for index in range(WARMUP_BATCH)])


def _warmup_jpegs(images: np.ndarray | None) -> list[bytes]:
    """Real-looking JPEG requests: 32x32 crops, plus a larger colour and a grey photo so
    the resize and grey-to-RGB branches of the graph are warmed up too."""
    crops = _warmup_images(images)
    larger = Image.fromarray(crops[0]).resize((96, 64), Image.BILINEAR)
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


def write_warmup_requests(path: Path, images: np.ndarray | None = None) -> int:
    """TF Serving replays these ``PredictionLog``s when it loads a version, so the first
    real request does not pay for graph warm-up: for each signature, JPEG requests of
    one image and of a batch (crops, a larger photo, a grey one). Returns the count."""
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


# -- verification ---------------------------------------------------------------------------

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


def _describe(infos) -> dict[str, tuple[str, list[int]]]:
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
        raise ExportError(f"{saved_model_dir} does not load: {str(err).splitlines()[0]}") from err
    _check_warmup(saved_model_dir / "assets.extra" / WARMUP_FILE, loaded)


def _check_warmup(path: Path, loaded) -> None:
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


# -- scoring and re-export ----------------------------------------------------------------


def score_saved_model(
    saved_model_dir: Path, images: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Probabilities (N, 10) for uint8 images, through ``serving_default`` on PNG bytes:
    exactly the path a serving client takes."""
    serve = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
    scores = []
    for start in range(0, len(images), batch_size):
        encoded = [encode_png(image) for image in images[start : start + batch_size]]
        scores.append(serve(images=tf.constant(encoded))["scores"].numpy())
    return np.concatenate(scores) if scores else np.zeros((0, NUM_CLASSES), np.float32)


def export_from_checkpoint(
    cfg: DictConfig,
    checkpoint_dir: Path,
    export_dir: Path,
    *,
    use_ema: bool = False,
    warmup_images: np.ndarray | None = None,
) -> Path:
    """Export the discriminator saved in a training checkpoint (``checkpoints/last`` or
    ``checkpoints/best`` of a run) as a SavedModel."""
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest is None:
        raise ExportError(f"{checkpoint_dir} holds no checkpoint")
    classifier = build_discriminator(cfg.model)
    key = "ema_discriminator" if use_ema else "discriminator"
    try:
        status = tf.train.Checkpoint(**{key: classifier}).read(latest).expect_partial()
        # Without this check a checkpoint lacking the key would export untrained weights.
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as err:
        raise ExportError(
            f"checkpoint {latest} has no '{key}' weights matching model "
            f"'{cfg.model.name}' (use_ema={use_ema}; is model.* the run's config?)"
        ) from err
    return export_saved_model(classifier, export_dir, warmup_images=warmup_images)


def main(argv: list[str] | None = None) -> None:
    """``python -m ssgan.export RUN_ID --output DIR``: export a run's checkpoint on demand."""
    parser = argparse.ArgumentParser(
        prog="python -m ssgan.export",
        description="Export a run's best or last checkpoint as a SavedModel for TF Serving.",
    )
    parser.add_argument("run_id")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument("--output", required=True, help="directory to create")
    parser.add_argument("--tracking-uri", default=None, help="default: tracking.uri of conf/")
    args = parser.parse_args(argv)
    from ssgan.cli import compose_config, user_errors
    from ssgan.tracking.runs import download_artifacts, load_run_config

    with user_errors():
        tracking = compose_config("config", []).tracking
        if args.tracking_uri:
            tracking.uri = args.tracking_uri
        output = Path(args.output)
        if output.exists():
            raise ExportError(f"--output {output} already exists: choose a new directory")
        cfg = load_run_config(tracking, args.run_id)
        with tempfile.TemporaryDirectory() as tmp:
            local = download_artifacts(
                tracking, args.run_id, f"checkpoints/{args.checkpoint}", Path(tmp)
            )
            # "best" holds the evaluated classifier (already the averaged one under EMA).
            use_ema = args.checkpoint == "last" and float(cfg.train.ema_decay) > 0
            export_from_checkpoint(cfg, local, output, use_ema=use_ema)
    print(f"exported {output}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
