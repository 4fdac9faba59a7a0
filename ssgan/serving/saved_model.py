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

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from ssgan.config import ModelConfig
from ssgan.files import remove_abandoned, staged_folder
from ssgan.models.networks import build_discriminator
from ssgan.serving.contract import CLASSIFY_METHOD, NUM_CLASSES, ExportError, verify_saved_model
from ssgan.serving.images import decode_images, encode_png, parse_image_examples
from ssgan.serving.warmup import WARMUP_FILE, write_warmup_requests


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
    classifier: tf.keras.Model, export_dir: Path, *, warmup_images: np.ndarray
) -> Path:
    """Write the SavedModel directly in ``export_dir`` and check it against the contract;
    ``warmup_images`` (uint8 crops like real requests) become its warm-up requests."""
    export_dir = Path(export_dir)
    if export_dir.exists() and (not export_dir.is_dir() or any(export_dir.iterdir())):
        raise ExportError(f"export directory {export_dir} already exists and is not empty")
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_exports(export_dir)
    # Built and verified in a sibling folder, then renamed: a failed export leaves nothing,
    # and what a killed one left, the next export removes.
    with staged_folder(export_dir, _STAGING) as staging:
        _write_saved_model(classifier, staging, warmup_images)
    return export_dir


def _write_saved_model(classifier: tf.keras.Model, folder: Path, warmup_images: np.ndarray) -> None:
    """The SavedModel, its warm-up requests, checked against the contract, in ``folder``."""
    module = ServingModule(classifier)
    signatures = {
        "predict_images": module.predict_images,
        "serving_default": module.serving_default,
        "classify": module.classify,
    }
    tf.saved_model.save(module, str(folder), signatures=signatures)
    _set_method_name(folder, "classify", CLASSIFY_METHOD)
    write_warmup_requests(folder / "assets.extra" / WARMUP_FILE, warmup_images)
    verify_saved_model(folder)


_STAGING = "partial"  # an export is built in .NAME.partial-<hex> beside its folder


def remove_dead_exports(export_dir: Path) -> list[Path]:
    """Remove what killed exports to ``export_dir`` left beside it (their staging folders
    ``.NAME.partial-*``); a live export's folder is left alone. Returns what was removed."""
    return remove_abandoned(Path(export_dir), _STAGING)


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
    model: ModelConfig,
    checkpoint_dir: Path,
    export_dir: Path,
    *,
    warmup_images: np.ndarray,
    use_ema: bool = False,
) -> Path:
    """Export the discriminator saved in a training checkpoint (``checkpoints/last`` or
    ``checkpoints/best`` of a run) as a SavedModel."""
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest is None:
        raise ExportError(f"{checkpoint_dir} holds no checkpoint")
    classifier = build_discriminator(model)
    key = "ema_discriminator" if use_ema else "discriminator"
    try:
        status = tf.train.Checkpoint(**{key: classifier}).read(latest).expect_partial()
        # Without this check a checkpoint lacking the key would export untrained weights.
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as err:
        raise ExportError(
            f"checkpoint {latest} has no '{key}' weights matching model "
            f"'{model.name}' (use_ema={use_ema}; is model.* the run's config?)"
        ) from err
    return export_saved_model(classifier, export_dir, warmup_images=warmup_images)
