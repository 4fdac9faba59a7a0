"""Networks: shapes, the tutorial's faults not copied, weight norm, batch independence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from ssgan.models.networks import (
    ByteMaskDropout,
    WeightNormConv2D,
    WeightNormConv2DTranspose,
    WeightNormDense,
    build_discriminator,
    build_generator,
)
from tests.helpers.networks import build, model_cfg, train_cfg

pytestmark = pytest.mark.integration


def _source(model, layer_name: str) -> str:
    """Name of the layer whose output feeds ``layer_name``."""
    return model.get_layer(layer_name)._inbound_nodes[0].parent_nodes[0].operation.name


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
    assert logits.dtype == features.dtype == tf.float32


def test_tutorial_discriminator_layout_and_seventh_reads_sixth() -> None:
    discriminator = build_discriminator(model_cfg(d_size_mult=64))
    convs = [discriminator.get_layer(f"conv{i}") for i in range(1, 8)]
    assert [c.filters for c in convs] == [64, 64, 64, 128, 128, 128, 128]
    assert [c.strides[0] for c in convs] == [2, 2, 2, 1, 1, 2, 1]
    # The original fed conv5's activations to conv7; here conv7 reads conv6's (2x2 map).
    assert _source(discriminator, "conv7") == "conv6_dropout"
    assert _source(discriminator, "conv6_dropout") == "conv6_act"
    assert _source(discriminator, "conv6_act") == "conv6_bn"
    assert discriminator.get_layer("conv7").output.shape[1:3] == (2, 2)
    # conv1 and conv7 have no batch norm (conv7: feature means must be free to move).
    names = {layer.name for layer in discriminator.layers}
    assert "conv1_bn" not in names and "conv7_bn" not in names and "conv6_bn" in names


def test_improved_gan_follows_the_reference_layout() -> None:
    discriminator = build_discriminator(model_cfg("improved_gan", d_size_mult=64))
    convs = [layer for layer in discriminator.layers if isinstance(layer, WeightNormConv2D)]
    assert [c.filters for c in convs] == [64, 64, 64, 128, 128, 128, 128, 128, 128]
    assert [c.kernel_size for c in convs] == [3] * 7 + [1, 1]
    assert [c.strides for c in convs] == [1, 1, 2, 1, 1, 2, 1, 1, 1]
    assert (
        convs[6].padding == "VALID" and discriminator.get_layer("features").output.shape[1] == 128
    )
    # g is fixed after initialisation except in the output layers (reference: train_g).
    assert not any(c.g.trainable for c in convs)
    assert discriminator.get_layer("class_logits").g.trainable
    assert not any(isinstance(layer, tf.keras.layers.BatchNormalization)
                   for layer in discriminator.layers)  # fmt: skip
    generator = build_generator(model_cfg("improved_gan", g_size_mult=64))
    assert generator.get_layer("project").units == 4 * 4 * 512
    assert [generator.get_layer(f"deconv{i}").filters for i in (1, 2)] == [256, 128]
    assert isinstance(generator.get_layer("deconv3"), WeightNormConv2DTranspose)
    assert not generator.get_layer("deconv1_bn").scale  # reference: batch norm with g=None


@pytest.mark.parametrize(
    ("layer", "inputs", "axes"),
    [
        (WeightNormDense(6, init_scale=0.1), (64, 5), (0,)),
        (WeightNormConv2D(6, 3), (8, 6, 6, 4), (0, 1, 2)),
        (WeightNormConv2DTranspose(6, 5, init_scale=0.1), (8, 4, 4, 3), (0, 1, 2)),
    ],
)
def test_weight_norm_data_dependent_init(layer, inputs, axes) -> None:
    x = tf.random.stateless_normal(inputs, seed=[1, 2]) * 3.0 + 1.0
    layer.pending_init = True
    first = layer(x).numpy()
    # Initialised on this batch: per unit zero mean and init_scale standard deviation.
    np.testing.assert_allclose(first.mean(axis=axes), 0.0, atol=1e-4)
    np.testing.assert_allclose(first.std(axis=axes), layer.init_scale, rtol=1e-3)
    np.testing.assert_allclose(layer(x).numpy(), first, rtol=1e-5, atol=1e-6)  # init is once
    # w = g v / ||v||: the length of v does not matter, only its direction (up to the
    # 1e-6 inside the norm, which b = -mean * g amplifies a little on offset inputs).
    layer.v.assign(layer.v * 3.0)
    np.testing.assert_allclose(layer(x).numpy(), first, atol=2e-3 * layer.init_scale)
    layer.v.assign(-layer.v)
    assert not np.allclose(layer(x).numpy(), first, atol=0.1 * layer.init_scale)


def _trained_gan(name: str) -> tuple[Any, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (64, 32, 32, 3)).astype(np.float32)
    gan = build(model_cfg(name), train_cfg())
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
    if name == "tutorial":
        # The training steps really updated the moving statistics used above.
        means = [v.numpy() for v in classifier.non_trainable_variables if "moving_mean" in v.path]
        assert len(means) == 5 and all(np.abs(m).max() > 0 for m in means)
        training = classifier(images, training=True)[0].numpy()
        assert not np.allclose(training[0], batched[0], atol=1e-5)


@pytest.mark.parametrize(("rate", "threshold"), [(0.5, 128), (0.2, 51), (0.08, 20)])
def test_byte_mask_dropout_drops_the_rounded_rate_and_keeps_the_expectation(
    rate: float, threshold: int
) -> None:
    layer = ByteMaskDropout(rate, seed=3)
    x = tf.fill([50, 32, 32, 4], 3.0)  # 204,800 elements
    assert layer(x, training=False) is x  # inference: the identity
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, training=True)
    scale = 256 / (256 - threshold)  # 2.0, 256/205 = 1.2488, 256/236 = 1.0847
    kept = out.numpy() != 0
    np.testing.assert_allclose(out.numpy()[kept], 3.0 * scale, rtol=1e-6)
    # The rounded rate threshold/256 (0.5, 0.1992, 0.0781); binomial std ~0.0011.
    assert abs(1 - kept.mean() - threshold / 256) < 0.005
    assert abs(out.numpy().mean() - 3.0) < 0.03  # E[out] = x
    # The gradient is the mask times the scale, as Keras' Dropout.
    np.testing.assert_allclose(tape.gradient(out, x).numpy(), kept * scale, rtol=1e-6)


def test_byte_mask_dropout_masks_follow_the_checkpointed_seed_state() -> None:
    discriminator = build_discriminator(model_cfg(dropout_mask="byte"))
    layers = [layer for layer in discriminator.layers if isinstance(layer, ByteMaskDropout)]
    assert [layer.name for layer in layers] == [
        "input_dropout", "conv1_dropout", "conv3_dropout", "conv6_dropout",
    ]  # fmt: skip
    # The seed states are what training checkpoints (ClassifierMethod._layer_rng_states).
    gan = build(model_cfg(dropout_mask="byte"), train_cfg())
    states = gan._layer_rng_states.states
    assert sum(isinstance(layer, ByteMaskDropout) for layer in gan.discriminator.layers) == 4
    assert len(states) == 4 and all("seed_generator_state" in v.path for v in states)
    layer, x = layers[0], tf.ones([8, 32, 32, 3])
    saved = layer.seed_generator.state.numpy()
    first = layer(x, training=True).numpy()
    assert not np.array_equal(layer(x, training=True).numpy(), first)  # a new mask per call
    layer.seed_generator.state.assign(saved)  # as a resume restores it
    np.testing.assert_array_equal(layer(x, training=True).numpy(), first)
