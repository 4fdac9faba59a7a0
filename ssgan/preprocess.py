"""Pixel scaling shared by the training pipeline and the exported serving graph.

Both paths must map pixels identically, or a served model sees inputs it was never
trained on; keeping the one definition here makes that a matter of construction.
"""

from __future__ import annotations

import tensorflow as tf

IMAGE_SIZE = 32


def to_model_range(images: tf.Tensor) -> tf.Tensor:
    """Map pixel values in [0, 255] (any dtype) to float32 in [-1, 1]: x / 127.5 - 1."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def from_model_range(images: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`to_model_range`, rounded and clipped to uint8 (for image grids)."""
    pixels = tf.round((tf.cast(images, tf.float32) + 1.0) * 127.5)
    return tf.cast(tf.clip_by_value(pixels, 0.0, 255.0), tf.uint8)
