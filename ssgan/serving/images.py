"""Request images: encoded as clients send them, decoded in the graph exactly as training
scales its pixels (RGB, 32x32, [-1, 1])."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from ssgan.preprocess import IMAGE_SIZE, to_model_range


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


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
