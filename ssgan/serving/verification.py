"""The verification set a run records with its exported model, so that promote can check
the model anywhere without the training data.

Training scores the exported model on the whole test set through ``serving_default`` (PNG
bytes in, as a client sends). It then logs the run artifact ``verification/verification.npz``:

* ``images`` (uint8, N x 32 x 32 x 3) and ``labels``: the first N test images (N at most
  :data:`VERIFICATION_IMAGES`), held out from training like the whole test set;
* ``scores``: the exported model's class probabilities for them;
* ``test_accuracy``, ``test_images``, ``test_set_sha256``: what the whole test set gave,
  how many images it had, and its fingerprint (SHA-256 of images and labels).

Promote scores the same images with the downloaded model: the scores must match the
recorded ones, which ties the model to the accuracy the run measured, without
regenerating or downloading any data set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ssgan.errors import UserError
from ssgan.serving.saved_model import score_saved_model

VERIFICATION_ARTIFACT = "verification/verification.npz"
VERIFICATION_IMAGES = 256  # ~0.8 MB of pixels before compression; enough to tell models apart
_FIELDS = ("images", "labels", "scores", "test_accuracy", "test_images", "test_set_sha256")


class VerificationError(UserError):
    """A verification set that is missing, malformed, or that the model does not reproduce."""


def fingerprint_test_set(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of a test set's pixels and labels (as stored: uint8 images, integer labels)."""
    return hashlib.sha256(
        np.ascontiguousarray(images).tobytes() + np.ascontiguousarray(labels).tobytes()
    ).hexdigest()


def save_verification_set(
    path: Path, images: np.ndarray, labels: np.ndarray, scores: np.ndarray
) -> Path:
    """Write the verification set of a model whose test-set ``scores`` are given."""
    count = min(len(images), VERIFICATION_IMAGES)
    accuracy = float(np.mean(np.argmax(scores, axis=-1) == labels)) if len(labels) else 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        images=np.asarray(images[:count], dtype=np.uint8),
        labels=np.asarray(labels[:count], dtype=np.int64),
        scores=np.asarray(scores[:count], dtype=np.float32),
        test_accuracy=np.float64(accuracy),
        test_images=np.int64(len(labels)),
        test_set_sha256=np.str_(fingerprint_test_set(images, labels)),
    )
    return path


def load_verification_set(path: Path) -> dict[str, Any]:
    """The recorded set; one-line VerificationError if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            record = {name: stored[name] for name in _FIELDS}
    except (OSError, ValueError, KeyError) as err:
        raise VerificationError(f"{path.name} is not a verification set ({err})") from err
    images, labels, scores = record["images"], record["labels"], record["scores"]
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or len(images) == 0
        or labels.shape != (len(images),)
        or scores.shape[0] != len(images)
    ):
        raise VerificationError(
            f"{path.name} is not a verification set (images {images.shape} {images.dtype}, "
            f"labels {labels.shape}, scores {scores.shape})"
        )
    return {
        "images": images,
        "labels": labels,
        "scores": scores,
        "test_accuracy": float(record["test_accuracy"]),
        "test_images": int(record["test_images"]),
        "test_set_sha256": str(record["test_set_sha256"]),
    }


def check_model(saved_model_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Score the recorded images with the model; return what it gives next to the record."""
    scores = score_saved_model(saved_model_dir, record["images"])
    if scores.shape != record["scores"].shape:
        difference = float("inf")
    else:
        difference = float(np.max(np.abs(scores - record["scores"])))
    agree = float(np.mean(np.argmax(scores, -1) == np.argmax(record["scores"], -1)))
    return {
        "max_score_difference": difference,
        "prediction_agreement": agree,
        "accuracy": float(np.mean(np.argmax(scores, -1) == record["labels"])),
        "images": len(record["images"]),
    }
