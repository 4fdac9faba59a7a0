"""The synthetic renderer: one SVHN-like 32x32 crop from a house number on a wall.

A crop is made in named steps, each drawing from the image's own random generator and
each with its strength in ``data.render`` (conf/data/synthetic.yaml, docs/data.md):

1. ``house_number`` — a 1-4 digit number (most SVHN crops come from 2- and 3-digit
   numbers); the labelled digit is one of them, its neighbours cut at the crop's edges,
   touching or overlapping it for a share ``overlap``;
2. ``typeface`` — one of matplotlib's fonts, at a random size and width (aspect ratio);
3. ``ground_and_ink`` — colours set by luminance contrast: faint ink for a share
   ``low_contrast``, light digits on a darker ground for a share ``light_on_dark``;
4. ``background`` (ssgan/data/backgrounds.py) — a textured wall for a share ``clutter``,
   a plate's edge for ``border``, uneven light always, a cast shadow for ``shadow``;
5. ``paint`` — the digits, with a raised or engraved look for some;
6. the camera (ssgan/data/camera.py) — a tilted, off-centre square crop that the digit
   fills 50-95 % of in height, defocus up to ``defocus``, motion blur for
   ``motion_blur``, low-resolution capture for ``low_res``, faded colour
   (``saturation``), sensor noise up to ``noise``, JPEG compression.

The digit's class follows SVHN's class shares of the split (``class_frequencies``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ssgan.config import RenderConfig
from ssgan.data import backgrounds, camera
from ssgan.data.svhn_reference import class_frequencies
from ssgan.errors import DataError

_FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf", "cmr10.ttf", "cmb10.ttf",
    "cmss10.ttf", "cmtt10.ttf",
)  # fmt: skip
SCENE = 128  # side of the square scene around the labelled digit (2x the crop's scale)
# Digits in a house number (1-4) and how often: SVHN's crops come mostly from 2-3 digits.
_NUMBER_LENGTHS = (1, 2, 3, 4)
_LENGTH_SHARES = (0.1, 0.4, 0.35, 0.15)


@functools.cache
def font_paths() -> tuple[str, ...]:
    """The digit fonts available from matplotlib's own data folder."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    found = tuple(str(folder / name) for name in _FONT_FILES if (folder / name).exists())
    if not found:
        raise DataError(f"no digit fonts found in {folder}: reinstall matplotlib")
    return found


@functools.cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.cache
def _shares(split: str, kind: str) -> np.ndarray:
    if kind == "uniform":
        return np.full(10, 0.1)
    return np.asarray(class_frequencies(split))


def draw_label(rng: np.random.Generator, split: str, settings: RenderConfig) -> int:
    """The crop's digit, drawn with SVHN's class shares of ``split`` (or uniformly)."""
    return int(rng.choice(10, p=_shares(split, settings.class_frequencies)))


@dataclass(frozen=True)
class HouseNumber:
    digits: str
    target: int  # position of the labelled digit
    gaps: tuple[float, ...]  # space after each digit, in digit heights (< 0: overlap)


def house_number(
    rng: np.random.Generator, label: int, split: str, settings: RenderConfig
) -> HouseNumber:
    length = int(rng.choice(_NUMBER_LENGTHS, p=_LENGTH_SHARES))
    shares = _shares(split, settings.class_frequencies)
    digits = [str(d) for d in rng.choice(10, length, p=shares)]
    target = int(rng.integers(length))
    digits[target] = str(label)
    overlapping = rng.random() < settings.overlap
    spacing = rng.uniform(-0.1, 0.02) if overlapping else rng.uniform(0.05, 0.35)
    gaps = tuple(spacing + rng.uniform(-0.03, 0.03, length))
    return HouseNumber("".join(digits), target, gaps)


@dataclass(frozen=True)
class Glyphs:
    """The painted number as a coverage mask over the scene, and the labelled digit's box."""

    mask: np.ndarray  # float32 (SCENE, SCENE) in [0, 1]
    box: tuple[int, int, int, int]  # top, left, bottom, right of the labelled digit
    line: tuple[int, int, int, int]  # the same for the whole number


def typeset(rng: np.random.Generator, number: HouseNumber) -> Glyphs:
    """The number in one font at one size and width, the labelled digit's ink centred."""
    fonts = font_paths()
    font = _font(fonts[int(rng.integers(len(fonts)))], int(rng.integers(40, 58)))
    width_scale = float(np.exp(rng.uniform(-0.2, 0.2)))
    boxes = [font.getbbox(d) for d in number.digits]
    ascent = min(b[1] for b in boxes)
    height = max(b[3] for b in boxes) - ascent
    line, target = Image.new("L", (SCENE * 3, SCENE), 0), Image.new("L", (SCENE * 3, SCENE), 0)
    x, top = 8.0, SCENE / 2 - height / 2
    for position, (digit, (left, _, right, _), gap) in enumerate(
        zip(number.digits, boxes, number.gaps, strict=True)
    ):
        lift = rng.uniform(-0.03, 0.03) * height  # hand-fixed digits are not quite level
        for canvas in (line, target) if position == number.target else (line,):
            ImageDraw.Draw(canvas).text((x - left, top - ascent + lift), digit, font=font, fill=255)
        x += right - left + gap * height
    size = (max(1, round(line.width * width_scale)), SCENE)
    line_ink = np.asarray(line.resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
    target_ink = np.asarray(target.resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
    t_top, t_left, t_bottom, t_right = _ink_box(target_ink)
    shift = round((t_left + t_right) / 2 - SCENE / 2)
    mask = np.zeros((SCENE, SCENE), np.float32)
    lo, hi = max(0, shift), min(line_ink.shape[1], shift + SCENE)
    if hi > lo:
        mask[:, lo - shift : hi - shift] = line_ink[:, lo:hi]
    l_top, l_left, l_bottom, l_right = _ink_box(line_ink)
    box = (t_top, t_left - shift, t_bottom, t_right - shift)
    return Glyphs(mask, box, (l_top, l_left - shift, l_bottom, l_right - shift))


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """Top, left, bottom, right (exclusive) of the pixels with ink."""
    rows, cols = np.nonzero(ink.max(axis=1) > 0.3)[0], np.nonzero(ink.max(axis=0) > 0.3)[0]
    if not len(rows):  # a glyph too thin to pass the threshold: its whole canvas
        return 0, 0, ink.shape[0], ink.shape[1]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def ground_and_ink(
    rng: np.random.Generator, settings: RenderConfig
) -> tuple[backgrounds.Colour, backgrounds.Colour]:
    """The plate's and the digits' colours, a luminance contrast apart."""
    light_ink = rng.random() < settings.light_on_dark
    if rng.random() < settings.low_contrast:
        contrast = rng.uniform(0.1, 0.22)
    else:
        contrast = rng.uniform(0.25, 0.6)
    if light_ink:
        ground_luma = rng.uniform(0.08, max(0.09, 0.92 - contrast))
        ink_luma = min(0.98, ground_luma + contrast)
    else:
        ground_luma = rng.uniform(min(0.9, 0.1 + contrast), 0.92)
        ink_luma = max(0.02, ground_luma - contrast)
    ground = backgrounds.with_luminance(backgrounds.painted_colour(rng), ground_luma)
    ink = backgrounds.with_luminance(backgrounds.painted_colour(rng), ink_luma)
    return ground, ink


def background(
    rng: np.random.Generator, ground: backgrounds.Colour, glyphs: Glyphs, settings: RenderConfig
) -> np.ndarray:
    """The plate (or the wall the digits are painted on), its edge, light and shadow."""
    if rng.random() < settings.clutter:
        scene = backgrounds.textured(rng, SCENE, SCENE, ground)
    else:
        scene = backgrounds.flat(SCENE, SCENE, ground)
    if rng.random() < settings.border:
        wall_colour = backgrounds.painted_colour(rng)
        wall = backgrounds.textured(rng, SCENE, SCENE, wall_colour)
        scene = backgrounds.plate_edge(rng, scene, wall, glyphs.line)
    scene = backgrounds.lighting(rng, scene)
    if rng.random() < settings.shadow:
        scene = backgrounds.cast_shadow(rng, scene)
    return scene


def paint(
    rng: np.random.Generator, scene: np.ndarray, glyphs: Glyphs, ink: backgrounds.Colour
) -> np.ndarray:
    """Ink over the scene; a quarter of numbers are raised (a drop shadow) or engraved."""
    mask = glyphs.mask[..., None]
    if rng.random() < 0.25:
        dy, dx = rng.integers(-3, 4, 2)
        offset = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
        shade = scene * rng.uniform(0.2, 0.6)
        scene = scene * (1.0 - offset) + shade * offset
    grain = rng.standard_normal((SCENE, SCENE, 1), dtype=np.float32)
    ink_field = ink * (1.0 + rng.uniform(0.0, 0.15) * grain)
    return np.clip(scene * (1.0 - mask) + ink_field * mask, 0.0, 1.0).astype(np.float32)


def render(rng: np.random.Generator, split: str, settings: RenderConfig) -> tuple[np.ndarray, int]:
    """One (32, 32, 3) uint8 crop and its digit; every choice comes from ``rng``."""
    label = draw_label(rng, split, settings)
    glyphs = typeset(rng, house_number(rng, label, split, settings))
    ground, ink = ground_and_ink(rng, settings)
    scene = paint(rng, background(rng, ground, glyphs, settings), glyphs, ink)
    return camera.capture(rng, scene, glyphs.box, settings), label
