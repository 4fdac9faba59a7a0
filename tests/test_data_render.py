"""The synthetic renderer's steps do to an image what docs/data.md says they do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from ssgan.config import RenderConfig
from ssgan.data import backgrounds, camera, render
from ssgan.data.svhn_reference import CLASS_COUNTS, class_frequencies

pytestmark = pytest.mark.unit


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _sharpness(pixels: np.ndarray) -> float:
    grey = np.asarray(pixels, np.float32).mean(axis=-1) / 255.0
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(np.abs(lap).mean())


def _checkerboard() -> Image.Image:
    board = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.repeat(board[..., None], 3, axis=2))


def test_svhn_class_shares_are_the_published_counts() -> None:
    assert sum(CLASS_COUNTS["train"]) == 73_257 and sum(CLASS_COUNTS["test"]) == 26_032
    assert round(class_frequencies("train")[1], 3) == 0.189
    assert round(class_frequencies("test")[1], 3) == 0.196


@pytest.mark.parametrize("split", ["train", "test"])
def test_labels_follow_svhn_class_shares_of_the_split(split: str) -> None:
    rng, settings = _rng(), RenderConfig()
    labels = [render.draw_label(rng, split, settings) for _ in range(20_000)]
    shares = np.bincount(labels, minlength=10) / len(labels)
    np.testing.assert_allclose(shares, class_frequencies(split), atol=0.01)


def test_uniform_class_frequencies_draw_every_digit_alike() -> None:
    rng, settings = _rng(), RenderConfig(class_frequencies="uniform")
    labels = [render.draw_label(rng, "train", settings) for _ in range(20_000)]
    np.testing.assert_allclose(np.bincount(labels, minlength=10) / 20_000, 0.1, atol=0.01)


def test_house_numbers_hold_the_label_and_overlap_for_the_set_share() -> None:
    rng = _rng()
    numbers = [render.house_number(rng, 7, "train", RenderConfig(overlap=1.0)) for _ in range(200)]
    assert all(n.digits[n.target] == "7" for n in numbers)
    assert all(max(n.gaps) < 0.06 for n in numbers)  # touching or overlapping
    spaced = [render.house_number(rng, 7, "train", RenderConfig(overlap=0.0)) for _ in range(200)]
    assert all(min(n.gaps) > -0.02 for n in spaced)
    lengths = np.bincount([len(n.digits) for n in numbers + spaced], minlength=5)
    assert lengths[2] + lengths[3] > lengths[1] + lengths[4]  # mostly 2- and 3-digit numbers


def test_the_labelled_digit_is_centred_in_the_scene() -> None:
    rng = _rng(3)
    for _ in range(20):
        glyphs = render.typeset(rng, render.house_number(rng, 4, "train", RenderConfig()))
        top, left, bottom, right = glyphs.box
        assert abs((left + right) / 2 - render.SCENE / 2) <= 1
        assert glyphs.mask[top:bottom, left:right].max() > 0.5  # ink inside the box


@pytest.mark.parametrize("light", [0.0, 1.0])
def test_ink_and_ground_differ_by_luminance_in_the_asked_direction(light: float) -> None:
    rng = _rng()
    for low in (0.0, 1.0):
        settings = RenderConfig(light_on_dark=light, low_contrast=low)
        for _ in range(100):
            ground, ink = render.ground_and_ink(rng, settings)
            difference = backgrounds.luminance(ink) - backgrounds.luminance(ground)
            assert (difference > 0) == (light == 1.0)
            assert 0.09 < abs(difference) <= (0.22 if low else 0.6) + 1e-6


def test_with_luminance_reaches_the_target_exactly() -> None:
    colour = np.array([0.8, 0.2, 0.4], np.float32)
    for target in (0.05, 0.3, 0.9):
        assert backgrounds.luminance(backgrounds.with_luminance(colour, target)) == pytest.approx(
            target, abs=1e-5
        )


def test_textures_carry_structure_and_flat_plates_none() -> None:
    colour = np.array([0.6, 0.4, 0.3], np.float32)
    assert (backgrounds.flat(16, 16, colour) == colour).all()
    for texture in backgrounds.TEXTURES:
        pattern = texture(_rng(), 64, 64)
        assert pattern.shape == (64, 64) and pattern.std() > 0.03, texture.__name__
    bricks = backgrounds.brick(_rng(1), 64, 64)
    assert np.abs(np.diff(bricks, axis=0)).max() > 0.2  # mortar joints: sharp steps


def test_plate_edge_shows_the_wall_outside_the_plate() -> None:
    plate = np.full((64, 64, 3), 0.9, np.float32)
    wall = np.full((64, 64, 3), 0.1, np.float32)
    framed = backgrounds.plate_edge(_rng(), plate, wall, (28, 28, 36, 36))
    assert framed[32, 32, 0] == pytest.approx(0.9)
    assert framed[0, 0, 0] == pytest.approx(0.1) and framed[63, 63, 0] == pytest.approx(0.1)


def test_a_cast_shadow_darkens_part_of_the_scene_only() -> None:
    scene = np.full((64, 64, 3), 0.8, np.float32)
    shaded = backgrounds.cast_shadow(_rng(), scene)
    assert shaded.min() < 0.6 and shaded.max() > 0.75 and (shaded <= scene + 1e-6).all()


def test_camera_steps_at_zero_strength_leave_the_crop_alone() -> None:
    crop = _checkerboard()
    assert np.array_equal(np.asarray(camera.low_resolution(_rng(), crop, 0.0)), np.asarray(crop))
    assert np.array_equal(np.asarray(camera.motion_blur(_rng(), crop, 0.0)), np.asarray(crop))
    assert np.array_equal(np.asarray(camera.defocus(_rng(), crop, 0.0)), np.asarray(crop))
    pixels = np.asarray(crop, np.float32)
    assert np.array_equal(camera.sensor_noise(_rng(), pixels, 0.0), pixels)


def test_blur_and_low_resolution_soften_edges() -> None:
    crop = _checkerboard()
    sharp = _sharpness(np.asarray(crop))
    assert _sharpness(np.asarray(camera.low_resolution(_rng(), crop, 1.0))) < sharp / 2
    assert _sharpness(np.asarray(camera.motion_blur(_rng(), crop, 1.0))) < sharp / 2
    assert _sharpness(np.asarray(camera.defocus(_rng(), crop, 4.0))) < sharp


def test_faded_colour_moves_towards_grey() -> None:
    pixels = np.zeros((4, 4, 3), np.float32)
    pixels[..., 0] = 200.0  # pure red
    spread = [np.ptp(camera.faded_colour(_rng(), pixels, s), axis=-1).mean() for s in (0.0, 1.0)]
    assert spread[0] < 0.25 * spread[1]  # only the white-balance cast is left


def test_jpeg_keeps_the_image_within_its_quality_range() -> None:
    pixels = np.asarray(_checkerboard(), np.float32)
    low = camera.jpeg(_rng(), pixels, 5, 5).astype(np.float32)
    high = camera.jpeg(_rng(), pixels, 100, 100).astype(np.float32)
    assert np.abs(high - pixels).mean() < np.abs(low - pixels).mean()


def test_strengths_change_the_images_and_the_cache_key() -> None:
    from ssgan.data import synthetic

    plain = dataclasses.replace(
        RenderConfig(), clutter=0.0, border=0.0, shadow=0.0, low_res=0.0, defocus=0.0,
        motion_blur=0.0, noise=0.0,
    )  # fmt: skip
    default = [synthetic.render_digit(0, "train", i)[0] for i in range(40)]
    clean = [synthetic.render_digit(0, "train", i, plain)[0] for i in range(40)]
    assert np.mean([_sharpness(x) for x in clean]) > np.mean([_sharpness(x) for x in default])
    assert synthetic.cache_key(0, 10, 5) != synthetic.cache_key(0, 10, 5, plain)
