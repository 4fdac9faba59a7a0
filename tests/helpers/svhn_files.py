"""Small files in SVHN's .mat layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io


def write_svhn_mat(path: Path, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small file in SVHN's exact layout: X (32, 32, 3, N) uint8, y (N, 1) in 1..10.
    Returns the images as (N, 32, 32, 3) and the digits 0-9 (label 10 is digit 0)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    digits = np.arange(count) % 10
    labels = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)
    scipy.io.savemat(str(path), {"X": np.transpose(images, (1, 2, 3, 0)), "y": labels})
    return images, digits
