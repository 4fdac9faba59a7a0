"""tf.data streams: resumable at any step, cycling pools per pass, pixels in [-1, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from ssgan.data import SemiSupervisedData
from ssgan.data.pipeline import eval_batches, train_batches

pytestmark = pytest.mark.integration


def make_data(labelled: int = 20, unlabelled: int = 90) -> SemiSupervisedData:
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    labels = lambda n: np.arange(n, dtype=np.int64) % 10  # noqa: E731
    pool = images(unlabelled)
    pool[0, 0, 0] = [0, 0, 255]  # both ends of the pixel range appear
    return SemiSupervisedData(
        labelled_x=images(labelled),
        labelled_y=labels(labelled),
        unlabelled_x=pool,
        val_x=images(10),
        val_y=labels(10),
        test_x=images(14),
        test_y=labels(14),
        labelled_indices=np.arange(labelled, dtype=np.int64),
        fingerprint="test",
    )


def scaled(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def batches(data: SemiSupervisedData, count: int, **kwargs: int) -> list:
    return list(train_batches(data, **kwargs).take(count).as_numpy_iterator())


@pytest.mark.parametrize("labelled", [20, 5])  # 5 < batch: one batch spans passes
def test_resuming_at_any_step_sees_the_same_batches(labelled: int) -> None:
    data = make_data(labelled)
    from_start = batches(data, 30, batch_size=8, seed=1)
    for start in (1, 17, 29):
        resumed = batches(data, 30 - start, batch_size=8, seed=1, start_step=start)
        for expected, actual in zip(from_start[start:], resumed, strict=True):
            for a, b in zip(expected, actual, strict=True):
                np.testing.assert_array_equal(a, b)


def test_batch_types_shapes_and_pixel_range() -> None:
    data = make_data()
    labelled, labels, unlabelled = batches(data, 1, batch_size=8, seed=0)[0]
    assert labelled.dtype == unlabelled.dtype == np.float32 and labels.dtype == np.int64
    assert labelled.shape == unlabelled.shape == (8, 32, 32, 3) and labels.shape == (8,)
    everything = np.concatenate([b[2] for b in batches(data, 12, batch_size=8, seed=0)])
    assert everything.min() == -1.0 and everything.max() == 1.0


def test_labels_travel_with_their_images() -> None:
    data = make_data()
    for images, labels, _ in batches(data, 4, batch_size=8, seed=3):
        for image, label in zip(images, labels, strict=True):
            match = [i for i, x in enumerate(scaled(data.labelled_x)) if np.array_equal(x, image)]
            assert data.labelled_y[match].tolist() == [label]


def test_each_pool_is_visited_once_per_pass_in_a_new_order() -> None:
    data = make_data(labelled=20, unlabelled=40)
    stream = batches(data, 5, batch_size=8, seed=0)  # 40 images: 2 labelled passes, 1 unlabelled
    key = lambda x: sorted(map(bytes, x))  # noqa: E731
    seen = np.concatenate([b[0] for b in stream])
    assert key(seen[:20]) == key(seen[20:]) == key(scaled(data.labelled_x))
    assert not np.array_equal(seen[:20], seen[20:])  # reshuffled for the second pass
    assert key(np.concatenate([b[2] for b in stream])) == key(scaled(data.unlabelled_x))


def test_seed_changes_the_order() -> None:
    data = make_data()
    first = batches(data, 1, batch_size=8, seed=1)[0]
    other = batches(data, 1, batch_size=8, seed=2)[0]
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[2], other[2])


def test_eval_batches_keep_order_and_scale_exactly() -> None:
    data = make_data()
    parts = list(eval_batches(data.test_x, data.test_y, 6).as_numpy_iterator())
    assert [len(y) for _, y in parts] == [6, 6, 2]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in parts]), scaled(data.test_x))
    np.testing.assert_array_equal(np.concatenate([y for _, y in parts]), data.test_y)
    assert parts[0][1].dtype == np.int64
