"""The data statistics: each figure on hand-computed arrays, and chunking."""

from __future__ import annotations

import numpy as np
import pytest

from ssgan.data.statistics import (
    class_frequencies,
    laplacian,
    mean_figures,
    split_statistics,
)


def rgb(grey_levels: list[list[int]]) -> np.ndarray:
    """One image whose three channels are all ``grey_levels``: (1, H, W, 3) uint8."""
    grey = np.array(grey_levels, dtype=np.uint8)
    return np.repeat(grey[None, :, :, None], 3, axis=-1)


def statistics_of(images: np.ndarray) -> object:
    return split_statistics(images, np.zeros(len(images), dtype=np.int64))


def test_class_frequencies_are_each_digits_share() -> None:
    shares = class_frequencies(np.array([0, 0, 1, 9]))
    assert shares == (0.5, 0.25, 0, 0, 0, 0, 0, 0, 0, 0.25)
    with pytest.raises(ValueError, match="0..9"):
        class_frequencies(np.array([3, 10]))


def test_laplacian_of_a_3x3_grey_image() -> None:
    grey = np.array([[[0.0, 0.2, 0.0], [0.4, 1.0, 0.6], [0.0, 0.8, 0.0]]])
    # 0.2 + 0.8 + 0.4 + 0.6 - 4 * 1.0 at the one interior pixel; corners do not count
    np.testing.assert_allclose(laplacian(grey), [[[-2.0]]])
    image = rgb([[0, 51, 0], [102, 255, 153], [0, 204, 0]])
    assert statistics_of(image).sharpness == pytest.approx(2.0)


def test_sharpness_takes_grey_as_the_mean_of_the_channels() -> None:
    image = np.zeros((1, 3, 3, 3), dtype=np.uint8)
    image[0, 1, 1] = (153, 0, 0)  # grey 0.6 / 3 = 0.2
    image[0, 0, 1] = (0, 255, 0)  # grey 1 / 3
    assert statistics_of(image).sharpness == pytest.approx(abs(1 / 3 - 4 * 0.2))


def test_saturation_is_the_mean_of_max_minus_min_channel() -> None:
    image = np.full((1, 3, 3, 3), 10, dtype=np.uint8)  # grey pixels: saturation 0
    image[0, 2, 0] = (255, 102, 51)  # (255 - 51) / 255 = 0.8
    assert statistics_of(image).saturation == pytest.approx(0.8 / 9)


def test_channel_mean_and_std_are_over_all_pixels_of_the_split() -> None:
    images = np.zeros((2, 3, 3, 3), dtype=np.uint8)
    images[1, :, :, 0] = 255  # R: half the pixels 0, half 1
    images[:, :, :, 1] = 51  # G: 0.2 everywhere
    images[:, 0, :, 2] = 255  # B: one row in three is 1
    stats = statistics_of(images)
    assert stats.channel_mean == pytest.approx((0.5, 0.2, 1 / 3))
    assert stats.channel_std == pytest.approx((0.5, 0.0, np.sqrt(2) / 3), abs=1e-7)


def test_contrast_is_the_mean_of_each_grey_images_std() -> None:
    checkerboard = np.indices((4, 4)).sum(axis=0) % 2 * 255
    flat = np.full((4, 4), 128)
    stats = statistics_of(np.concatenate([rgb(checkerboard.tolist()), rgb(flat.tolist())]))
    assert stats.contrast == pytest.approx((0.5 + 0.0) / 2)
    # every interior pixel of the checkerboard differs by 1 from its four neighbours
    assert stats.sharpness == pytest.approx((4.0 + 0.0) / 2)


def test_chunked_equals_unchunked_and_a_direct_float64_computation() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 23)
    whole = mean_figures(images, chunk_size=23)
    for chunk_size in (1, 5, 2000):
        np.testing.assert_allclose(mean_figures(images, chunk_size), whole, rtol=1e-6)
    stats = split_statistics(images, labels, chunk_size=5)
    pixels = images.astype(np.float64) / 255
    grey = pixels.mean(axis=-1)
    direct_laplacian = (
        grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
    ) - 4 * grey[:, 1:-1, 1:-1]
    assert stats.channel_mean == pytest.approx(tuple(pixels.mean(axis=(0, 1, 2))), rel=1e-5)
    assert stats.channel_std == pytest.approx(tuple(pixels.std(axis=(0, 1, 2))), rel=1e-5)
    assert stats.sharpness == pytest.approx(np.abs(direct_laplacian).mean(), rel=1e-5)
    assert stats.saturation == pytest.approx((pixels.max(-1) - pixels.min(-1)).mean(), rel=1e-5)
    assert stats.contrast == pytest.approx(grey.std(axis=(1, 2)).mean(), rel=1e-5)
    assert stats.class_frequencies == pytest.approx(tuple(np.bincount(labels, minlength=10) / 23))
