"""The camera that turns a synthetic scene into an SVHN-like 32x32 crop.

SVHN's crops are street-view photographs: the digit's box widened to a square (its
neighbours in view at the sides), often captured small and upsampled, out of focus or
moving, in faded colour, noisy and JPEG-compressed (Netzer et al. 2011). Each step below
is one of those effects, its strength from ``data.render``, its randomness from the
image's own generator.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from ssgan.config import RenderConfig

CROP = 32
_CUT = 2 * CROP  # the square is cut at twice the crop's size, then area-downsampled


def square_cut(
    rng: np.random.Generator, scene: np.ndarray, box: tuple[int, int, int, int]
) -> Image.Image:
    """A square around the labelled digit's ``box`` that the digit fills 50-95 % of in
    height, off-centre a little, seen at a tilt (rotation and shear), as a 64x64 image."""
    top, left, bottom, right = box
    side = (bottom - top) / rng.uniform(0.6, 0.95)
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    centre += rng.uniform(-0.08, 0.08, 2) * side
    angle, shear = np.deg2rad(rng.uniform(-8, 8)), rng.uniform(-0.2, 0.2)
    cos, sin = np.cos(angle), np.sin(angle)
    # Output pixel -> scene point: scale to the square, then rotate and shear about its
    # centre (the inverse map PIL's AFFINE transform wants).
    tilt = np.array([[cos, sin + shear * cos], [-sin, cos - shear * sin]]) * (side / _CUT)
    offset = centre - tilt @ np.array([_CUT / 2, _CUT / 2])
    pixels = Image.fromarray((np.clip(scene, 0.0, 1.0) * 255).astype(np.uint8))
    corner = pixels.getpixel((0, 0))
    edge = tuple(int(c) for c in corner) if isinstance(corner, tuple) else (0, 0, 0)
    coefficients = (*tilt[0], offset[0], *tilt[1], offset[1])
    return pixels.transform(
        (_CUT, _CUT),
        Image.Transform.AFFINE,
        coefficients,
        Image.Resampling.BILINEAR,
        fillcolor=edge,
    )


def low_resolution(rng: np.random.Generator, crop: Image.Image, share: float) -> Image.Image:
    """For a ``share`` of crops, a small capture (10-24 pixels) upsampled to 32x32, as
    SVHN's small boxes were."""
    if rng.random() >= share:
        return crop
    side = int(rng.integers(12, 25))
    small = crop.resize((side, side), Image.Resampling.BOX)
    return small.resize((CROP, CROP), Image.Resampling.BILINEAR)


def defocus(rng: np.random.Generator, crop: Image.Image, largest: float) -> Image.Image:
    return crop.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, largest))))


def motion_blur(rng: np.random.Generator, crop: Image.Image, share: float) -> Image.Image:
    """For a ``share`` of crops, a streak of 3-5 pixels in a random direction."""
    if rng.random() >= share:
        return crop
    length = int(rng.integers(3, 6))
    angle = rng.uniform(0, np.pi)
    kernel = np.zeros((5, 5), np.float32)
    for step in np.linspace(-(length - 1) / 2, (length - 1) / 2, length):
        kernel[round(2 + step * np.sin(angle)), round(2 + step * np.cos(angle))] += 1.0
    return crop.filter(ImageFilter.Kernel((5, 5), kernel.ravel().tolist(), float(kernel.sum())))


def faded_colour(rng: np.random.Generator, pixels: np.ndarray, saturation: float) -> np.ndarray:
    """Colour partly washed out towards grey, and a white-balance cast (bluish on
    average, as SVHN's channel means are: B above R and G)."""
    grey = pixels.mean(axis=2, keepdims=True)
    kept = saturation * rng.uniform(0.5, 1.5)
    cast = 1.0 + rng.normal([-0.02, -0.01, 0.04], 0.05)
    return (grey + kept * (pixels - grey)) * cast.astype(np.float32)


def sensor_noise(rng: np.random.Generator, pixels: np.ndarray, largest: float) -> np.ndarray:
    return pixels + rng.normal(0.0, rng.uniform(0.0, largest), pixels.shape)


def jpeg(rng: np.random.Generator, pixels: np.ndarray, lowest: int, highest: int) -> np.ndarray:
    buffer = io.BytesIO()
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image.save(buffer, format="JPEG", quality=int(rng.integers(lowest, highest + 1)))
    return np.asarray(Image.open(buffer).convert("RGB"), np.uint8)


def capture(
    rng: np.random.Generator,
    scene: np.ndarray,
    box: tuple[int, int, int, int],
    settings: RenderConfig,
) -> np.ndarray:
    """The crop of ``scene`` around ``box``, through every camera step, as uint8 32x32x3."""
    crop = square_cut(rng, scene, box).resize((CROP, CROP), Image.Resampling.BOX)
    crop = defocus(rng, motion_blur(rng, crop, settings.motion_blur), settings.defocus)
    crop = low_resolution(rng, crop, settings.low_res)
    pixels = faded_colour(rng, np.asarray(crop, np.float32), settings.saturation)
    pixels = sensor_noise(rng, pixels, settings.noise)
    return jpeg(rng, pixels, settings.jpeg_min_quality, settings.jpeg_max_quality)
