"""What each on-device augmentation (ssgan/methods/augment.py) does to an image: shifts by
whole pixels, Cutout's grey square, the colour operations on hand-made pixel values, and
the strong augmentation's range and reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from ssgan.methods import augment

pytestmark = pytest.mark.unit

SIZE = 32


def _random_images(count: int, seed: int = 0, low: float = -1.0) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(low, 1.0, (count, SIZE, SIZE, 3)).astype(np.float32))


def _shifted_matches(out: np.ndarray, image: np.ndarray, dx: int, dy: int, border: int) -> bool:
    """``out`` equals ``image`` moved dx right and dy down, away from the borders."""
    inner = slice(border, SIZE - border)
    moved = np.roll(image, (dy, dx), axis=(0, 1))  # exact away from the wrapped edges
    return np.allclose(out[inner, inner], moved[inner, inner], atol=1e-5)


# -- shifts ------------------------------------------------------------------------------


def test_shift_matrices_move_a_known_pattern_by_whole_pixels() -> None:
    # One bright pixel per image at row 10, column 12 on black; image 1 moves 3 right and 2
    # up, image 2 five left and four down: the pixel lands at (8, 15) and (14, 7).
    images = np.zeros((2, SIZE, SIZE, 1), np.float32)
    images[:, 10, 12, 0] = 1.0
    matrices = augment.shift_matrices(tf.constant([3, -5]), tf.constant([-2, 4]))
    out = augment.transform(tf.constant(images), matrices).numpy()
    for index, (row, col) in enumerate([(8, 15), (14, 7)]):
        expected = np.zeros((SIZE, SIZE), np.float32)
        expected[row, col] = 1.0
        np.testing.assert_allclose(out[index, :, :, 0], expected, atol=1e-6)


def test_shift_reflects_the_border_instead_of_filling_it() -> None:
    # Columns 0..7 numbered; moved 2 right, the two new columns mirror the first ones:
    # (1, 0 | 0, 1, 2, ...), never a constant fill.
    ramp = tf.tile(tf.reshape(tf.range(8, dtype=tf.float32), [1, 1, 8, 1]), [1, 8, 1, 1])
    out = augment.transform(ramp, augment.shift_matrices(tf.constant([2]), tf.constant([0])))
    np.testing.assert_allclose(out.numpy()[0, 3, :, 0], [1, 0, 0, 1, 2, 3, 4, 5], atol=1e-6)


def test_weak_with_no_shift_returns_the_input() -> None:
    images = _random_images(4)
    rng = tf.random.Generator.from_seed(1)
    state = rng.state.numpy().copy()
    out = augment.weak(images, rng, 0)
    np.testing.assert_array_equal(out.numpy(), images.numpy())
    np.testing.assert_array_equal(rng.state.numpy(), state)  # nothing drawn


def test_weak_shifts_each_image_by_whole_pixels_within_the_range() -> None:
    # For each image, search every shift up to 3 pixels (one past the largest allowed):
    # exactly one matches the interior, it lies in [-2, 2], and over 64 images every
    # allowed shift (both ends included) is drawn and the images do not share one.
    images = _random_images(64, seed=3)
    out = augment.weak(images, tf.random.Generator.from_seed(5), 2).numpy()
    found = []
    for image, shifted in zip(images.numpy(), out, strict=True):
        matches = [
            (dx, dy)
            for dx in range(-3, 4)
            for dy in range(-3, 4)
            if _shifted_matches(shifted, image, dx, dy, border=3)
        ]
        assert len(matches) == 1, matches
        found.append(matches[0])
    shifts = np.array(found)
    assert np.abs(shifts).max() <= 2
    assert set(shifts[:, 0]) == set(shifts[:, 1]) == {-2, -1, 0, 1, 2}
    assert len(set(found)) > 1


# -- Cutout ------------------------------------------------------------------------------


def _extent(mask: np.ndarray, axis: int) -> tuple[int, int]:
    rows = np.where(mask.any(axis=axis))[0]
    return int(rows.min()), int(rows.max()) + 1


def test_cutout_fills_a_square_of_the_share_with_middle_grey_and_keeps_the_rest() -> None:
    # Images in [0.5, 1] (no pixel is 0 before); share 0.5 of 32 pixels: a 16-pixel square
    # where it lies inside the image, cut by the border elsewhere, filled with 0.0 (the
    # model range's middle grey); every other pixel unchanged.
    images = _random_images(32, seed=4, low=0.5)
    out = augment.cutout(images, tf.random.Generator.from_seed(2), 0.5).numpy()
    whole_sides = []
    for image, cut in zip(images.numpy(), out, strict=True):
        mask = np.all(cut == 0.0, axis=-1)
        assert mask.any()
        (top, bottom), (left, right) = _extent(mask, 1), _extent(mask, 0)
        box = np.zeros_like(mask)
        box[top:bottom, left:right] = True
        np.testing.assert_array_equal(mask, box)  # one filled rectangle
        np.testing.assert_array_equal(cut[~mask], image[~mask])
        for low, high in ((top, bottom), (left, right)):
            assert high - low <= 16
            if low > 0 and high < SIZE:  # not cut by the border
                whole_sides.append(high - low)
    assert whole_sides and set(whole_sides) == {16}


def test_cutout_share_zero_returns_the_input() -> None:
    images = _random_images(2)
    out = augment.cutout(images, tf.random.Generator.from_seed(2), 0.0)
    np.testing.assert_array_equal(out.numpy(), images.numpy())


# -- colour operations on [0, 1] images ---------------------------------------------------


def _pixels(*values: float) -> tf.Tensor:
    """One image per value list: a 1 x N row of grey pixels (three equal channels)."""
    row = np.array(values, np.float32).reshape(1, 1, -1, 1)
    return tf.constant(np.repeat(row, 3, axis=-1))


def test_solarize_inverts_values_at_or_above_the_threshold() -> None:
    # Threshold 0.5: 0.2 stays, 0.5 -> 0.5 (inverted: 1 - 0.5), 0.8 -> 0.2, 1.0 -> 0.0.
    images = tf.concat([_pixels(0.2, 0.5, 0.8, 1.0)] * 2, axis=0)
    out = augment.solarize(images, tf.constant([0.5, 0.9])).numpy()[..., 0]
    np.testing.assert_allclose(out[0, 0], [0.2, 0.5, 0.2, 0.0], atol=1e-6)
    # Threshold 0.9 for the second image: only 1.0 is inverted.
    np.testing.assert_allclose(out[1, 0], [0.2, 0.5, 0.8, 0.0], atol=1e-6)


def test_posterize_keeps_the_top_bits_of_each_8_bit_value() -> None:
    # 200/255 with 4 bits: floor(200 / 16) * 16 = 192; with 1 bit: 128; 100 with 1 bit: 0.
    # 8 bits keep every 8-bit value.
    images = tf.concat([_pixels(200 / 255, 100 / 255, 37 / 255)] * 3, axis=0)
    out = augment.posterize(images, tf.constant([4.0, 1.0, 8.0])).numpy()[..., 0] * 255.0
    np.testing.assert_allclose(out[0, 0], [192, 96, 32], atol=1e-3)
    np.testing.assert_allclose(out[1, 0], [128, 0, 0], atol=1e-3)
    np.testing.assert_allclose(out[2, 0], [200, 100, 37], atol=1e-3)


def test_autocontrast_stretches_each_channel_and_leaves_flat_ones() -> None:
    # Channel 0 spans [0.25, 0.75] -> [0, 1] (0.5 -> 0.5); channel 1 spans [0.1, 0.3]
    # (0.2 -> 0.5); channel 2 is flat at 0.4 and stays.
    image = np.array([[[0.25, 0.1, 0.4], [0.5, 0.2, 0.4], [0.75, 0.3, 0.4]]], np.float32).reshape(
        1, 1, 3, 3
    )
    out = augment.autocontrast(tf.constant(image)).numpy()[0, 0]
    np.testing.assert_allclose(out[:, 0], [0.0, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(out[:, 1], [0.0, 0.5, 1.0], atol=1e-5)
    np.testing.assert_allclose(out[:, 2], [0.4, 0.4, 0.4], atol=1e-6)


def test_blend_between_an_image_and_another() -> None:
    # other + f (image - other), per image; clipped to [0, 1] when f extrapolates.
    image = tf.concat([_pixels(0.8, 0.2)] * 4, axis=0)
    other = tf.concat([_pixels(0.4, 0.6)] * 4, axis=0)
    out = augment.blend(image, other, tf.constant([1.0, 0.0, 0.5, 3.0])).numpy()[..., 0]
    np.testing.assert_allclose(out[0, 0], [0.8, 0.2], atol=1e-6)  # factor 1: the image
    np.testing.assert_allclose(out[1, 0], [0.4, 0.6], atol=1e-6)  # factor 0: the other
    np.testing.assert_allclose(out[2, 0], [0.6, 0.4], atol=1e-6)  # halfway
    # 0.4 + 3 (0.4) = 1.6 -> 1; 0.6 + 3 (-0.4) = -0.6 -> 0.
    np.testing.assert_allclose(out[3, 0], [1.0, 0.0], atol=1e-6)


# -- geometric operations of the strong augmentation --------------------------------------


@pytest.mark.parametrize("op", ["rotate", "shear_x", "shear_y"])
def test_rotation_and_shear_turn_about_the_image_centre(op: str) -> None:
    # At the largest magnitude, the centre pixel (15.5, 15.5) maps to itself: the image
    # turns in place rather than about a corner and out of the frame.
    level = tf.constant([1.0, -1.0])
    ops = tf.fill([2], augment.OPS.index(op))
    matrices = augment._geometric_matrices(ops, level, float(SIZE)).numpy()
    centre = np.array([15.5, 15.5, 1.0])
    for matrix in matrices:
        np.testing.assert_allclose(matrix @ centre, centre, atol=1e-4)


def test_translate_moves_the_centre_by_30_percent_of_the_side() -> None:
    # level 1: the output pixel at the centre reads the input 0.3 x 32 = 9.6 pixels away.
    ops = tf.constant([augment.OPS.index("translate_x"), augment.OPS.index("translate_y")])
    matrices = augment._geometric_matrices(ops, tf.constant([1.0, 1.0]), float(SIZE)).numpy()
    centre = np.array([15.5, 15.5, 1.0])
    np.testing.assert_allclose(matrices[0] @ centre, [25.1, 15.5, 1.0], atol=1e-4)
    np.testing.assert_allclose(matrices[1] @ centre, [15.5, 25.1, 1.0], atol=1e-4)


def test_colour_ops_get_the_identity_transform() -> None:
    ops = tf.range(len(augment.COLOUR_OPS))
    level = tf.fill([len(augment.COLOUR_OPS)], 0.7)
    matrices = augment._geometric_matrices(ops, level, float(SIZE)).numpy()
    for matrix in matrices:
        np.testing.assert_allclose(matrix, np.eye(3), atol=1e-5)


# -- the strong augmentation and the input noise ------------------------------------------


def test_strong_keeps_shape_dtype_and_range_and_changes_most_images() -> None:
    images = _random_images(16, seed=6)
    out = augment.strong(images, tf.random.Generator.from_seed(7), 2, 0.5)
    assert out.shape == images.shape and out.dtype == tf.float32
    values = out.numpy()
    assert values.min() >= -1.0 and values.max() <= 1.0
    # Without Cutout, RandAugment alone (two of 13 operations, identity among them).
    plain = augment.strong(images, tf.random.Generator.from_seed(7), 2, 0.0).numpy()
    changed = np.abs(plain - images.numpy()).mean(axis=(1, 2, 3)) > 1e-3
    assert changed.sum() >= 12, changed


def test_strong_is_reproducible_from_the_generator_seed() -> None:
    images = _random_images(8, seed=8)
    first = augment.strong(images, tf.random.Generator.from_seed(11), 2, 0.5).numpy()
    again = augment.strong(images, tf.random.Generator.from_seed(11), 2, 0.5).numpy()
    other = augment.strong(images, tf.random.Generator.from_seed(12), 2, 0.5).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_gaussian_noise_has_the_asked_standard_deviation() -> None:
    images = tf.zeros([16, SIZE, SIZE, 3])
    noisy = augment.gaussian_noise(images, tf.random.Generator.from_seed(9), 0.15).numpy()
    # 49,152 draws: the sample std is within a few per cent of 0.15, the mean near 0.
    assert noisy.std() == pytest.approx(0.15, rel=0.03)
    assert abs(noisy.mean()) < 0.01
    unchanged = augment.gaussian_noise(images, tf.random.Generator.from_seed(9), 0.0)
    np.testing.assert_array_equal(unchanged.numpy(), images.numpy())


def test_unit_range_round_trip() -> None:
    # [-1, 1] <-> [0, 1]: -1 -> 0, 0 -> 0.5, 1 -> 1; from_unit clips what leaves [0, 1].
    values = tf.constant([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(augment.to_unit(values).numpy(), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(
        augment.from_unit(tf.constant([-0.5, 0.5, 2.0])).numpy(), [-1.0, 0.0, 1.0]
    )
    assert math.isclose(
        float(augment.from_unit(augment.to_unit(tf.constant(0.3)))), 0.3, rel_tol=1e-6
    )
