"""Small in-memory data sets in the shape training takes."""

from __future__ import annotations

import numpy as np

from ssgan.data import SemiSupervisedData


def prototype_digits(root_seed: int = 0) -> SemiSupervisedData:
    """Ten noisy prototypes, learnable in a few dozen steps (uint8 like the real data)."""
    rng = np.random.default_rng(root_seed)
    prototypes = rng.uniform(0, 255, (10, 32, 32, 3))

    def draw(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        draw_rng = np.random.default_rng(seed)
        labels = draw_rng.integers(0, 10, count)
        noisy = prototypes[labels] + 40.0 * draw_rng.normal(size=(count, 32, 32, 3))
        return np.clip(noisy, 0, 255).astype(np.uint8), labels.astype(np.int64)

    labelled_x, labelled_y = draw(200, 1)
    unlabelled_x, _ = draw(600, 2)
    val_x, val_y = draw(200, 3)
    test_x, test_y = draw(200, 4)
    return SemiSupervisedData(
        labelled_x=labelled_x, labelled_y=labelled_y, unlabelled_x=unlabelled_x,
        val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y,
        labelled_indices=np.arange(200), fingerprint="prototypes",
    )  # fmt: skip
