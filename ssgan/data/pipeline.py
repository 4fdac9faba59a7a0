"""tf.data input pipelines.

Per training step: a labelled batch cycled from the small labelled pool and an
unlabelled batch from the large pool (as in Salimans et al.'s code), each read as an
endless stream of per-pass permutations. The batch at global step ``s`` depends only on
(data, batch size, seed, s), so a resumed run sees exactly what an uninterrupted one
would have. Pixels go to [-1, 1] with the same function the exported model uses.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from ssgan.data import SemiSupervisedData
from ssgan.preprocess import to_model_range

_LABELLED, _UNLABELLED = 0, 1


class PermutationStream:
    """Position ``k`` of an endless stream that visits ``size`` items once per pass, in a
    fresh permutation per pass seeded by ``(seed, pool, pass)``."""

    def __init__(self, size: int, seed: int, pool: int) -> None:
        self.size, self.seed, self.pool = size, seed, pool
        self._cache: dict[int, np.ndarray] = {}

    def _permutation(self, pass_index: int) -> np.ndarray:
        if pass_index not in self._cache:
            if len(self._cache) > 2:  # passes are visited in order: keep the last few
                self._cache.pop(min(self._cache))
            rng = np.random.default_rng([self.seed, self.pool, pass_index])
            self._cache[pass_index] = rng.permutation(self.size)
        return self._cache[pass_index]

    def indices(self, start: int, count: int) -> np.ndarray:
        positions = np.arange(start, start + count)
        passes, offsets = np.divmod(positions, self.size)
        out = np.empty(count, np.int64)
        for pass_index in np.unique(passes):
            chosen = passes == pass_index
            out[chosen] = self._permutation(int(pass_index))[offsets[chosen]]
        return out


def _uint8_batches(
    data: SemiSupervisedData, batch_size: int, unlabelled_size: int, seed: int, start_step: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    labelled = PermutationStream(len(data.labelled_x), seed, _LABELLED)
    unlabelled = PermutationStream(len(data.unlabelled_x), seed, _UNLABELLED)
    step = start_step
    while True:
        chosen = labelled.indices(step * batch_size, batch_size)
        pool = unlabelled.indices(step * unlabelled_size, unlabelled_size)
        yield data.labelled_x[chosen], data.labelled_y[chosen], data.unlabelled_x[pool]
        step += 1


def train_batches(
    data: SemiSupervisedData,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    unlabelled_batch_size: int | None = None,
) -> tf.data.Dataset:
    """Endless ``(labelled_images, labels, unlabelled_images)``, ``batch_size`` labelled
    and ``unlabelled_batch_size`` (default the same) unlabelled images a step; images
    float32 in [-1, 1]."""
    unlabelled_size = unlabelled_batch_size or batch_size
    labelled_spec = tf.TensorSpec([batch_size, 32, 32, 3], tf.uint8)
    unlabelled_spec = tf.TensorSpec([unlabelled_size, 32, 32, 3], tf.uint8)
    dataset = tf.data.Dataset.from_generator(
        lambda: _uint8_batches(data, batch_size, unlabelled_size, seed, start_step),
        output_signature=(labelled_spec, tf.TensorSpec([batch_size], tf.int64), unlabelled_spec),
    )
    dataset = dataset.map(
        lambda x, y, u: (to_model_range(x), y, to_model_range(u)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """One pass over ``(images, labels)`` in order; images float32 in [-1, 1]."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
    dataset = dataset.batch(batch_size).map(
        lambda x, y: (to_model_range(x), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
