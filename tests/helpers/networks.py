"""Tiny model and training sections, and the batches a GAN step takes."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ssgan.config import ModelConfig, TrainConfig


def model_cfg(name: str = "tutorial", **extra) -> ModelConfig:
    """A tiny ``model.*`` section (the schema's defaults otherwise)."""
    return ModelConfig(**{"name": name, "z_size": 8, "g_size_mult": 4, "d_size_mult": 4, **extra})


def train_cfg(**extra) -> TrainConfig:
    """A ``train.*`` section: the schema's defaults and ``extra``."""
    return TrainConfig(**extra)


def gan_batch(seed: int = 0, size: int = 16):
    """(labelled images, labels, unlabelled images), images uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    labelled = tf.constant(rng.uniform(-1, 1, (size, 32, 32, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 10, size))
    unlabelled = tf.constant(rng.uniform(-1, 1, (size, 32, 32, 3)).astype(np.float32))
    return labelled, labels, unlabelled


def gan_stream(size: int = 16, nan_at: int | None = None) -> tf.data.Dataset:
    """Endless batches, batch ``i`` a function of ``i`` (NaN pixels at index ``nan_at``)."""

    def batch(index):
        seed = tf.stack([index, 1])
        images = tf.random.stateless_uniform([2, size, 32, 32, 3], seed, -1.0, 1.0)
        labels = tf.random.stateless_uniform([size], seed, 0, 10, dtype=tf.int64)
        if nan_at is not None:
            images = tf.where(index == nan_at, float("nan"), images)
        return images[0], labels, images[1]

    return tf.data.Dataset.range(1_000_000).map(batch)


def build(model, train, method: str = "ssgan", strategy=None, total_steps: int = 0, **keys):
    """The method ``method`` (its schema's defaults, and ``keys``) on tiny sections."""
    from ssgan.method_config import METHOD_SCHEMAS
    from ssgan.methods import build_method

    return build_method(model, train, METHOD_SCHEMAS[method](**keys), total_steps, strategy)
