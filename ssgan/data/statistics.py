"""Figures that describe one split of digit images: class shares, pixel statistics, sharpness.

One definition per figure, used for the synthetic digits and for SVHN's files alike, so
both can be set beside SVHN's published figures (:mod:`ssgan.data.svhn_reference`).
Images are uint8 ``(N, H, W, 3)`` (32x32 in this project), scaled to [0, 1]; grey is the
mean of R, G and B. The figures, over the whole split:

* class frequencies: each digit's share of the labels;
* channel mean and std: over all pixels of the split, per channel R, G, B (population std);
* sharpness: the mean over images and interior pixels of the grey image's absolute
  4-neighbour Laplacian, ``x[i-1,j] + x[i+1,j] + x[i,j-1] + x[i,j+1] - 4 x[i,j]``;
* saturation: the mean over pixels of (largest channel - smallest channel);
* contrast: the mean over images of the grey image's standard deviation (RMS contrast).

Images are read in chunks of :data:`CHUNK_SIZE`, in float32, so 50,000 images take tens
of MB rather than GB; the sums run in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_SIZE = 2000
NUM_CLASSES = 10

# Columns of the per-image figures (see per_image_figures).
_MEAN, _SQUARE, _SHARPNESS, _SATURATION, _CONTRAST = slice(0, 3), slice(3, 6), 6, 7, 8


@dataclass(frozen=True)
class SplitStatistics:
    """The figures of one split (definitions in the module's docstring)."""

    images: int
    class_frequencies: tuple[float, ...]  # digits 0-9
    channel_mean: tuple[float, float, float]  # R, G, B
    channel_std: tuple[float, float, float]
    sharpness: float
    saturation: float
    contrast: float


def class_frequencies(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> tuple[float, ...]:
    """Each class's share of ``labels`` (integers 0 to num_classes - 1), summing to 1."""
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        raise ValueError("no labels: the share of each class is undefined")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    counts = np.bincount(labels, minlength=num_classes)
    return tuple(float(count) / labels.size for count in counts)


def laplacian(grey: np.ndarray) -> np.ndarray:
    """The 4-neighbour Laplacian of grey images ``(N, H, W)`` at their interior pixels:
    ``(N, H-2, W-2)``. The border has no four neighbours, so it is left out."""
    up, down = grey[:, :-2, 1:-1], grey[:, 2:, 1:-1]
    left, right = grey[:, 1:-1, :-2], grey[:, 1:-1, 2:]
    return up + down + left + right - 4 * grey[:, 1:-1, 1:-1]


def per_image_figures(images: np.ndarray) -> np.ndarray:
    """``(N, 9)`` float32: per image, the channel means (3), the channel means of the
    squared pixels (3), mean |Laplacian|, mean saturation and the grey image's std."""
    if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < 3:
        raise ValueError(f"images must be (N, H, W, 3) with H, W >= 3, not {images.shape}")
    pixels = images.astype(np.float32) / np.float32(255.0)
    grey = pixels.mean(axis=-1)
    flat = pixels.reshape(len(pixels), -1, 3)
    return np.column_stack(
        [
            flat.mean(axis=1),
            np.square(flat).mean(axis=1),
            np.abs(laplacian(grey)).mean(axis=(1, 2)),
            (pixels.max(axis=-1) - pixels.min(axis=-1)).mean(axis=(1, 2)),
            grey.std(axis=(1, 2)),
        ]
    )


def mean_figures(images: np.ndarray, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
    """The per-image figures averaged over all images, ``(9,)`` float64, read in chunks.
    Every image has the same number of pixels, so a mean over images of per-image means
    is the mean over all pixels."""
    if len(images) == 0:
        raise ValueError("no images: the figures of an empty split are undefined")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, not {chunk_size}")
    total = np.zeros(9, dtype=np.float64)
    for start in range(0, len(images), chunk_size):
        chunk = per_image_figures(images[start : start + chunk_size])
        total += chunk.sum(axis=0, dtype=np.float64)
    return total / len(images)


def split_statistics(
    images: np.ndarray, labels: np.ndarray, chunk_size: int = CHUNK_SIZE
) -> SplitStatistics:
    """Every figure of one split (definitions in the module's docstring)."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    means = mean_figures(images, chunk_size)
    # Var = E[x^2] - E[x]^2; rounding can leave a constant channel a hair below zero.
    variance = np.maximum(means[_SQUARE] - np.square(means[_MEAN]), 0.0)
    mean_r, mean_g, mean_b = (float(v) for v in means[_MEAN])
    std_r, std_g, std_b = (float(v) for v in np.sqrt(variance))
    return SplitStatistics(
        images=len(images),
        class_frequencies=class_frequencies(labels),
        channel_mean=(mean_r, mean_g, mean_b),
        channel_std=(std_r, std_g, std_b),
        sharpness=float(means[_SHARPNESS]),
        saturation=float(means[_SATURATION]),
        contrast=float(means[_CONTRAST]),
    )
