"""Validation hold-out and class-balanced label budgets, alone and through load_data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssgan.config import DataConfig
from ssgan.data import load_data
from ssgan.data.split import balanced_label_budget, per_class_counts, validation_split
from ssgan.errors import DataError


def synthetic_cfg(root: Path, **extra: object) -> DataConfig:
    base = dict(name="synthetic", root=str(root), verify=True, download=False, use_extra=False)
    base |= dict(num_labeled=20, val_size=30, batch_size=8, seed=0, synthetic_seed=0)
    base |= dict(train_size=200, test_size=20, num_workers=1)
    return DataConfig(**{**base, **extra})  # type: ignore[arg-type]


@pytest.mark.unit
def test_balanced_budget_reproducible_and_disjoint_from_validation() -> None:
    labels = np.arange(1000) % 10
    pool, val = validation_split(1000, 100, seed=3)
    assert not set(pool) & set(val) and len(pool) == 900 and len(val) == 100
    first = balanced_label_budget(labels, pool, 100, 10, seed=3)
    assert np.bincount(labels[first]).tolist() == [10] * 10
    assert set(first) <= set(pool)
    np.testing.assert_array_equal(first, balanced_label_budget(labels, pool, 100, 10, seed=3))
    assert not np.array_equal(first, balanced_label_budget(labels, pool, 100, 10, seed=4))


@pytest.mark.unit
def test_remainder_is_spread_one_each_over_random_classes() -> None:
    labels = np.arange(1000) % 10
    pool = np.arange(1000)
    uneven = balanced_label_budget(labels, pool, 25, 10, seed=0)
    assert len(uneven) == 25
    assert sorted(np.bincount(labels[uneven]).tolist()) == [2] * 5 + [3] * 5
    extras = {tuple(np.flatnonzero(per_class_counts(25, 10, s) == 3)) for s in range(10)}
    assert len(extras) > 1  # which classes get the remainder depends on the seed


@pytest.mark.unit
@pytest.mark.parametrize(
    ("num_labeled", "message"), [(5, ">= 10"), (950, "larger than the labelled pool of 900")]
)
def test_impossible_budgets(num_labeled: int, message: str) -> None:
    labels = np.arange(1000) % 10
    pool, _ = validation_split(1000, 100, seed=0)
    with pytest.raises(DataError, match=f"data.num_labeled={num_labeled}") as caught:
        balanced_label_budget(labels, pool, num_labeled, 10, seed=0)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.unit
def test_budget_needing_more_of_a_class_than_exists() -> None:
    labels = np.array([0] * 50 + [1] * 3 + list(range(2, 10)) * 10)
    pool = np.arange(len(labels))
    with pytest.raises(DataError, match="needs 5 images of class 1, but the training pool has "):
        balanced_label_budget(labels, pool, 50, 10, seed=0)


@pytest.mark.integration
def test_load_data_pools(tmp_path: Path) -> None:
    cfg = synthetic_cfg(tmp_path)
    data = load_data(cfg)
    assert len(data.val_x) == 30 and len(data.unlabelled_x) == 170 and len(data.test_x) == 20
    assert np.bincount(data.labelled_y, minlength=10).tolist() == [2] * 10
    assert data.labelled_indices.dtype == np.int64 and len(data.labelled_indices) == 20
    # The unlabelled pool is every non-validation training image, the labelled included,
    # and no labelled image is a validation image.
    unlabelled = {bytes(x) for x in data.unlabelled_x}
    validation = {bytes(x) for x in data.val_x}
    assert {bytes(x) for x in data.labelled_x} <= unlabelled
    assert not unlabelled & validation
    assert data.fingerprint.startswith("synthetic-")
    again = load_data(cfg)
    np.testing.assert_array_equal(again.labelled_indices, data.labelled_indices)
    assert again.fingerprint == data.fingerprint
    reseeded = load_data(synthetic_cfg(tmp_path, seed=1))
    assert not np.array_equal(reseeded.labelled_indices, data.labelled_indices)
    assert reseeded.fingerprint != data.fingerprint
    # The test set does not move with data.seed: it is never used for choices.
    np.testing.assert_array_equal(reseeded.test_x, data.test_x)


@pytest.mark.integration
def test_validation_larger_than_training_set(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.val_size=200 leaves no training images"):
        load_data(synthetic_cfg(tmp_path, val_size=200))


@pytest.mark.unit
def test_unknown_data_set(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.name=mnist .* allowed svhn, synthetic"):
        load_data(synthetic_cfg(tmp_path, name="mnist"))
