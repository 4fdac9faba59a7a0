"""What lies behind a synthetic house number: walls, plates, their edges, light and shadow.

Ganin & Lempitsky (2015) name "the structured clutter in the background" as the largest
difference between their synthetic digits and SVHN; these steps draw that clutter. Every
function takes the image's own random generator, so a scene is a pure function of it.
Scenes are float32 RGB arrays in [0, 1], (height, width, 3).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

Colour = np.ndarray  # float32 RGB in [0, 1], shape (3,)
Texture = Callable[[np.random.Generator, int, int], np.ndarray]

# Luminance weights (ITU-R BT.601), used to set ink against ground by brightness.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def luminance(colour: Colour) -> float:
    return float(colour @ LUMA)


def with_luminance(colour: Colour, target: float) -> Colour:
    """``colour`` darkened towards black or lightened towards white until its luminance
    is ``target`` (luminance is linear in RGB, so one blend reaches it exactly)."""
    current = max(luminance(colour), 1e-4)
    if target <= current:
        return (colour * (target / current)).astype(np.float32)
    share = (target - current) / max(1.0 - current, 1e-4)
    return (colour + (1.0 - colour) * share).astype(np.float32)


def painted_colour(rng: np.random.Generator) -> Colour:
    """A paint or material colour: mostly muted (grey tinted by a hue), sometimes vivid."""
    tint = rng.uniform(0.0, 0.4) if rng.random() < 0.8 else rng.uniform(0.4, 0.9)
    hue = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    return ((1.0 - tint) * rng.uniform(0.2, 0.8) + tint * hue).astype(np.float32)


def value_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a random grid of ``cell``-pixel squares, interpolated."""
    grid = rng.uniform(-1.0, 1.0, (height // cell + 2, width // cell + 2)).astype(np.float32)
    image = Image.fromarray(grid, mode="F").resize(
        ((width // cell + 2) * cell, (height // cell + 2) * cell), Image.Resampling.BILINEAR
    )
    return np.asarray(image, np.float32)[:height, :width]


def brick(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Courses of bricks in running bond, each brick its own shade, with mortar joints."""
    course = int(rng.integers(10, 30))
    length = int(course * rng.uniform(1.8, 3.2))
    joint = int(rng.integers(1, 4))
    rows = np.arange(height)[:, None] + int(rng.integers(course))
    cols = np.arange(width)[None, :] + int(rng.integers(length))
    row_index = rows // course
    shifted = cols + (row_index % 2) * (length // 2)
    shade = rng.uniform(-0.25, 0.25, (height // course + 3, width // length + 3))
    pattern = shade[row_index, shifted // length].astype(np.float32)
    mortar = (rows % course < joint) | (shifted % length < joint)
    pattern[mortar] = rng.uniform(0.3, 0.6) * (1 if rng.random() < 0.6 else -1)
    return pattern + 0.15 * value_noise(rng, height, width, 3)


def planks(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Wood or siding: planks with dark gaps and grain running along them."""
    vertical = rng.random() < 0.3
    rows, cols = (width, height) if vertical else (height, width)
    board = int(rng.integers(12, 36))
    across = np.arange(rows) + int(rng.integers(board))
    grain = value_noise(rng, rows, cols * 4, 4)[:, ::4] * 0.5  # stretched along the boards
    pattern = grain + rng.uniform(-0.15, 0.15, rows // board + 2)[across // board][:, None]
    pattern[across % board < int(rng.integers(1, 4))] -= rng.uniform(0.3, 0.6)
    pattern = pattern.astype(np.float32)
    return np.ascontiguousarray(pattern.T) if vertical else pattern


def stone(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Stucco, concrete or stone: noise at several scales."""
    pattern = sum(
        value_noise(rng, height, width, cell) * weight
        for cell, weight in ((24, 0.3), (8, 0.2), (3, 0.15))
    )
    return np.asarray(pattern, np.float32)


def tiles(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Square tiles or panels with grout lines."""
    size = int(rng.integers(16, 48))
    rows = np.arange(height)[:, None] + int(rng.integers(size))
    cols = np.arange(width)[None, :] + int(rng.integers(size))
    shade = rng.uniform(-0.1, 0.1, (height // size + 2, width // size + 2))
    pattern = shade[rows // size, cols // size].astype(np.float32)
    pattern[(rows % size < 2) | (cols % size < 2)] = rng.uniform(-0.4, 0.4)
    return pattern


TEXTURES: tuple[Texture, ...] = (brick, planks, stone, tiles)


def textured(rng: np.random.Generator, height: int, width: int, colour: Colour) -> np.ndarray:
    """A wall of ``colour`` carrying one of the textures at a random strength."""
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))](rng, height, width)
    strength = rng.uniform(0.15, 0.5)
    return np.clip(colour * (1.0 + strength * texture[..., None]), 0.0, 1.0)


def flat(height: int, width: int, colour: Colour) -> np.ndarray:
    return np.broadcast_to(colour, (height, width, 3)).astype(np.float32)


def plate_edge(
    rng: np.random.Generator, scene: np.ndarray, wall: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """The plate ends a little beyond the number's ``box`` (top, left, bottom, right): the
    wall shows outside it, sometimes with a rim in a colour of its own."""
    top, left, bottom, right = box
    grow = (rng.uniform(0.05, 0.6, 4) * (bottom - top)).astype(int)
    top, left = max(0, top - grow[0]), max(0, left - grow[1])
    bottom, right = bottom + grow[2], right + grow[3]
    framed = wall.copy()
    framed[top:bottom, left:right] = scene[top:bottom, left:right]
    if rng.random() < 0.5:  # a rim: the plate's frame or its bevel
        rim = int(rng.integers(1, 4))
        inner = framed[top + rim : bottom - rim, left + rim : right - rim].copy()
        framed[top:bottom, left:right] = painted_colour(rng)
        framed[top + rim : bottom - rim, left + rim : right - rim] = inner
    return framed


def lighting(rng: np.random.Generator, scene: np.ndarray) -> np.ndarray:
    """Uneven light: a linear brightness ramp across the scene."""
    height, width = scene.shape[:2]
    ys, xs = np.mgrid[-0.5 : 0.5 : height * 1j, -0.5 : 0.5 : width * 1j]
    ramp = 1.0 + rng.uniform(-0.4, 0.4) * xs + rng.uniform(-0.4, 0.4) * ys
    return np.clip(scene * ramp[..., None].astype(np.float32), 0.0, 1.0)


def cast_shadow(rng: np.random.Generator, scene: np.ndarray) -> np.ndarray:
    """A shadow edge (a roof, a lamp, a tree) crossing the scene at a random angle."""
    height, width = scene.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    across = (xs - width / 2) * np.cos(angle) + (ys - height / 2) * np.sin(angle)
    edge = rng.uniform(-0.3, 0.3) * min(height, width)
    softness = rng.uniform(1.0, 8.0)
    shade = 1.0 / (1.0 + np.exp(-(across - edge) / softness))
    depth = rng.uniform(0.3, 0.65)
    return scene * (1.0 - depth * shade)[..., None]
