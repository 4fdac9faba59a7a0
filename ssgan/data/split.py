"""Validation hold-out and class-balanced label budgets.

The validation split is drawn from the training set for model selection; the test set
is never used for choices. The labelled subset is drawn from what remains, balanced over
classes; as in Salimans et al.'s code, the unlabelled pool is all non-validation
training images (the labelled ones included).
"""

from __future__ import annotations

import numpy as np

from ssgan.errors import DataError


def validation_split(count: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices), disjoint, both sorted, for ``seed``."""
    order = np.random.default_rng([seed, 1]).permutation(count)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


def per_class_counts(num_labeled: int, num_classes: int, seed: int) -> np.ndarray:
    """``num_labeled`` spread over classes: equal shares, the remainder to random classes."""
    counts = np.full(num_classes, num_labeled // num_classes, np.int64)
    extra = np.random.default_rng([seed, 2]).choice(
        num_classes, num_labeled % num_classes, replace=False
    )
    counts[extra] += 1
    return counts


def balanced_label_budget(
    labels: np.ndarray, pool: np.ndarray, num_labeled: int, num_classes: int, seed: int
) -> np.ndarray:
    """Sorted indices (into the training file) of a class-balanced labelled subset of ``pool``."""
    if num_labeled < num_classes:
        raise DataError(
            f"data.num_labeled={num_labeled} is too small: a class-balanced budget needs at "
            f"least one image per class (>= {num_classes})"
        )
    if num_labeled > len(pool):
        raise DataError(
            f"data.num_labeled={num_labeled} is larger than the labelled pool of {len(pool)} images"
        )
    rng = np.random.default_rng([seed, 3])
    chosen = []
    for digit, wanted in enumerate(per_class_counts(num_labeled, num_classes, seed)):
        members = pool[labels[pool] == digit]
        if len(members) < wanted:
            raise DataError(
                f"data.num_labeled={num_labeled} needs {wanted} images of class {digit}, but the "
                f"training pool has only {len(members)}: lower data.num_labeled"
            )
        chosen.append(rng.choice(members, wanted, replace=False))
    return np.sort(np.concatenate(chosen))
