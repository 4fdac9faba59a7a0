"""Image augmentations that run on device inside a method's step, on batches in the
model's range [-1, 1], with randomness from the method's checkpointed generator (so a
resumed run draws what an uninterrupted one would).

``weak``: a random shift (Mean Teacher's and FixMatch's; SVHN images are never flipped).
``strong``: FixMatch's RandAugment variant (Sohn et al. 2020, appendix D, table 12): per
image, ``ops`` operations drawn from the list below, each at a random magnitude, then
Cutout. Equalize is left out (a per-image histogram has no cheap batched form); the other
operations and their ranges are the paper's.
"""

from __future__ import annotations

import math

import tensorflow as tf

# The strong augmentation's operations; geometric ones are one projective transform.
COLOUR_OPS = ("identity", "autocontrast", "brightness", "color", "contrast", "posterize",
              "sharpness", "solarize")  # fmt: skip
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
OPS = COLOUR_OPS + GEOMETRIC_OPS
_GREY = 0.0  # the model range's middle grey: Cutout's fill


def to_unit(images: tf.Tensor) -> tf.Tensor:
    return (tf.cast(images, tf.float32) + 1.0) / 2.0


def from_unit(images: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(images, 0.0, 1.0) * 2.0 - 1.0


# -- colour operations on [0, 1] images; ``factor``/``level`` are per image, shape [B] ----


def _per_image(values: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.cast(values, tf.float32), [-1, 1, 1, 1])


def blend(images: tf.Tensor, other: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL's ImageEnhance: ``other + factor * (images - other)``; factor 1 keeps the image."""
    return tf.clip_by_value(other + _per_image(factor) * (images - other), 0.0, 1.0)


def autocontrast(images: tf.Tensor) -> tf.Tensor:
    """Each image's channels stretched to span [0, 1] (flat channels left alone)."""
    low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    span = high - low
    return tf.where(span > 0, (images - low) / tf.maximum(span, 1e-6), images)


def grey(images: tf.Tensor) -> tf.Tensor:
    """ITU-R 601 luma, repeated over the three channels."""
    luma = tf.reduce_sum(images * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
    return tf.broadcast_to(luma, tf.shape(images))


def posterize(images: tf.Tensor, bits: tf.Tensor) -> tf.Tensor:
    """Keep the top ``bits`` bits of each 8-bit channel value."""
    step = tf.pow(2.0, 8.0 - _per_image(bits))
    return tf.floor(tf.round(images * 255.0) / step) * step / 255.0


def smoothed(images: tf.Tensor) -> tf.Tensor:
    """PIL's SMOOTH filter (centre 5, the rest 1, over 13): what Sharpness blends with."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(tf.reshape(kernel, [3, 3, 1, 1]), [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "SAME")


def solarize(images: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
    """Values at or above ``threshold`` inverted."""
    return tf.where(images >= _per_image(threshold), 1.0 - images, images)


def _colour(images: tf.Tensor, op: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
    """Colour operation ``op`` (an index into COLOUR_OPS, or a geometric one: unchanged)
    at ``level`` in [0, 1], per image."""
    factor = 0.05 + 0.9 * level  # table 12: enhancement factors in [0.05, 0.95]
    mean = tf.reduce_mean(grey(images), axis=[1, 2, 3], keepdims=True)
    results = {
        "autocontrast": autocontrast(images),
        "brightness": blend(images, tf.zeros_like(images), factor),
        "color": blend(images, grey(images), factor),
        "contrast": blend(images, tf.broadcast_to(mean, tf.shape(images)), factor),
        "posterize": posterize(images, tf.round(4.0 + 4.0 * level)),  # 4 to 8 bits
        "sharpness": blend(images, smoothed(images), factor),
        "solarize": solarize(images, level),  # threshold in [0, 1]
    }
    out = images
    for name, result in results.items():
        chosen = tf.reshape(tf.equal(op, COLOUR_OPS.index(name)), [-1, 1, 1, 1])
        out = tf.where(chosen, result, out)
    return out


# -- geometric operations: one projective transform per image -----------------------------


def transform(images: tf.Tensor, matrices: tf.Tensor, fill_mode: str = "REFLECT") -> tf.Tensor:
    """Each image resampled through its 3x3 matrix (output pixel -> input pixel), bilinear;
    outside the image ``fill_mode`` (REFLECT, or CONSTANT with middle grey)."""
    flat = tf.reshape(matrices, [-1, 9])[:, :8] / tf.reshape(matrices, [-1, 9])[:, 8:]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=flat,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.5,
        interpolation="BILINEAR",
        fill_mode=fill_mode,
    )


def shift_matrices(dx: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """Matrices that move each image's content ``dx`` pixels right and ``dy`` down."""
    dx, dy = tf.cast(dx, tf.float32), tf.cast(dy, tf.float32)
    one, zero = tf.ones_like(dx), tf.zeros_like(dx)
    rows = [one, zero, -dx, zero, one, -dy, zero, zero, one]
    return tf.reshape(tf.stack(rows, axis=-1), [-1, 3, 3])


def _geometric_matrices(op: tf.Tensor, level: tf.Tensor, size: float) -> tf.Tensor:
    """Per image: rotation by up to 30 degrees, shear up to 0.3, or a shift of up to 30 %
    of the side (table 12), about the centre, signed at random by ``level`` in [-1, 1];
    the identity for colour operations."""
    angle = level * 30.0 * math.pi / 180.0
    shear, shift = level * 0.3, level * 0.3 * size
    one, zero = tf.ones_like(level), tf.zeros_like(level)
    cos, sin = tf.cos(angle), tf.sin(angle)
    choices = {
        "rotate": [cos, -sin, zero, sin, cos, zero],
        "shear_x": [one, shear, zero, zero, one, zero],
        "shear_y": [one, zero, zero, shear, one, zero],
        "translate_x": [one, zero, shift, zero, one, zero],
        "translate_y": [one, zero, zero, zero, one, shift],
    }
    rows = [one, zero, zero, zero, one, zero]
    for name, values in choices.items():
        chosen = tf.equal(op, OPS.index(name))
        rows = [tf.where(chosen, value, row) for value, row in zip(values, rows, strict=True)]
    linear = tf.reshape(tf.stack([*rows, zero, zero, one], axis=-1), [-1, 3, 3])
    centre = (size - 1.0) / 2.0
    # shift_matrices(d) reads input pixel x - d for output pixel x: "to the centre" is +c.
    to_centre = shift_matrices(centre * one, centre * one)
    back = shift_matrices(-centre * one, -centre * one)
    # Output pixel -> input pixel: move to the centre, apply, move back.
    return back @ linear @ to_centre


# -- the augmentations the methods call ---------------------------------------------------


def weak(images: tf.Tensor, rng: tf.random.Generator, max_shift: int) -> tf.Tensor:
    """Each image shifted by whole pixels drawn from [-max_shift, max_shift] in x and y,
    the border reflected."""
    if max_shift <= 0:
        return images
    batch = tf.shape(images)[0]
    shifts = rng.uniform([2, batch], -max_shift, max_shift + 1, dtype=tf.int32)
    return transform(images, shift_matrices(shifts[0], shifts[1]))


def gaussian_noise(images: tf.Tensor, rng: tf.random.Generator, stddev: float) -> tf.Tensor:
    """Additive Gaussian noise (Mean Teacher's input noise), in the model's range."""
    if stddev <= 0:
        return images
    return images + stddev * rng.normal(tf.shape(images))


def cutout(images: tf.Tensor, rng: tf.random.Generator, share: float) -> tf.Tensor:
    """A square of side ``share`` x the image side, centred at a random pixel of each
    image, filled with middle grey (DeVries & Taylor 2017)."""
    if share <= 0:
        return images
    batch, size = tf.shape(images)[0], images.shape[1]
    half = share * size / 2.0
    centres = rng.uniform([2, batch, 1], 0, size, dtype=tf.int32)
    coords = tf.cast(tf.range(size), tf.float32)[tf.newaxis, :]
    rows = _within(coords - tf.cast(centres[0], tf.float32), half)  # [B, size]
    cols = _within(coords - tf.cast(centres[1], tf.float32), half)
    square = tf.logical_and(rows[:, :, tf.newaxis], cols[:, tf.newaxis, :])[..., tf.newaxis]
    return tf.where(square, _GREY, images)


def _within(offsets: tf.Tensor, half: float) -> tf.Tensor:
    """-half <= offset < half: exactly 2 * half pixels (FixMatch's Cutout)."""
    return tf.logical_and(offsets >= -half, offsets < half)


def strong(images: tf.Tensor, rng: tf.random.Generator, ops: int, cutout_share: float) -> tf.Tensor:
    """RandAugment as FixMatch uses it: ``ops`` operations per image, each drawn uniformly
    from :data:`OPS` at a uniformly drawn magnitude, then Cutout."""
    batch, size = tf.shape(images)[0], float(images.shape[1])
    unit = to_unit(images)
    for _ in range(ops):
        op = rng.uniform([batch], 0, len(OPS), dtype=tf.int32)
        level = rng.uniform([batch])
        unit = _colour(unit, op, level)
        signed = level * tf.where(rng.uniform([batch]) < 0.5, -1.0, 1.0)
        unit = transform(unit, _geometric_matrices(op, signed, size), fill_mode="CONSTANT")
    return cutout(from_unit(unit), rng, cutout_share)
