"""Networks: shapes, the tutorial's faults not copied, batch independence at inference."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from ssgan.gan import SemiSupervisedGAN
from ssgan.model import build_discriminator, build_generator


def model_cfg(name: str = "tutorial", **extra) -> OmegaConf:
    base = dict(name=name, z_size=8, g_size_mult=4, d_size_mult=4, drop_rate=0.5)
    base |= dict(leaky_alpha=0.2, num_classes=10, image_size=32)
    return OmegaConf.create({**base, **extra})


def train_cfg(**extra) -> OmegaConf:
    base = dict(mode="ssgan", lr=3e-4, beta1=0.5, feature_matching="squared_l2")
    base |= dict(unsupervised_weight=1.0, ema_decay=0.0, seed=0, jit_compile=False)
    return OmegaConf.create({**base, **extra})


@pytest.mark.parametrize("name", ["tutorial", "improved_gan"])
def test_shapes(name: str) -> None:
    generator, discriminator = (
        build_generator(model_cfg(name)),
        build_discriminator(model_cfg(name)),
    )
    images = generator(tf.random.uniform([5, 8]), training=False)
    assert images.shape == (5, 32, 32, 3)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    logits, features = discriminator(images, training=False)
    assert logits.shape == (5, 10) and features.shape[0] == 5


def test_tutorial_discriminator_widths_and_seventh_reads_sixth() -> None:
    discriminator = build_discriminator(model_cfg(d_size_mult=64))
    convs = [discriminator.get_layer(f"conv{i}") for i in range(1, 8)]
    assert [c.filters for c in convs] == [64, 64, 64, 128, 128, 128, 128]
    seventh = discriminator.get_layer("conv7")
    # The original fed conv5's activations to conv7; here conv7 reads conv6's.
    source = seventh._inbound_nodes[0].parent_nodes[0].operation
    assert source.name == "conv6_dropout"
    assert (
        discriminator.get_layer("conv6_dropout")._inbound_nodes[0].parent_nodes[0].operation.name
        == "conv6_act"
    )


def _trained_gan(name: str) -> tuple[SemiSupervisedGAN, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (64, 32, 32, 3)).astype(np.float32)
    gan = SemiSupervisedGAN(model_cfg(name), train_cfg())
    gan.initialize(tf.constant(images))
    labels = tf.constant(rng.integers(0, 10, 16))
    for _ in range(3):  # moves the batch-norm moving statistics away from their init
        gan.train_step((tf.constant(images[:16]), labels, tf.constant(images[16:32])))
    return gan, images


@pytest.mark.parametrize("name", ["tutorial", "improved_gan"])
def test_inference_is_batch_independent(name: str) -> None:
    gan, images = _trained_gan(name)
    classifier = gan.classifier()
    alone = classifier(images[:1], training=False)[0].numpy()
    batched = classifier(images, training=False)[0].numpy()
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    # And the moving statistics really moved: training mode differs from inference.
    assert not np.allclose(classifier(images, training=True)[0].numpy()[0], batched[0], atol=1e-5)
