"""Weight averaging of the discriminator, right from the first step.

Salimans et al.'s code evaluates an exponential moving average of D's weights
(θ̄ ← d·θ̄ + (1 − d)·θ). Two things make a plain average wrong in short runs or with
batch norm, and this module fixes both:

* ``ema_decay_at`` warms the decay up, d_t = min(d, (1 + t)/(10 + t)) for the update
  after t earlier ones, so the initial weights have lost all but 9!·t!/(t + 9)! of their
  weight after t updates (1e-5 after 10) and the average never covers more than about
  the last ~t/9 steps early in training; it becomes the plain EMA once (1 + t)/(10 + t)
  exceeds d. A plain EMA with d = 0.999 still holds 0.999^1400 = 25 % initialisation
  after 1,400 steps.
* ``reestimate_batch_norm`` gives the averaged network the batch-norm moving statistics
  of *its own* activations: averaged weights paired with the live network's statistics
  normalise every layer with the wrong mean and variance.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

# Warm-up of the decay: d_t = min(d, (1 + t) / (WARMUP + t)), as TensorFlow's
# ExponentialMovingAverage does with ``num_updates``.
WARMUP = 10.0


def ema_decay_at(decay: float, updates: tf.Tensor | int) -> tf.Tensor:
    """The decay of the update that follows ``updates`` earlier ones:
    min(decay, (1 + t) / (10 + t))."""
    t = tf.cast(updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + t) / (WARMUP + t))


def update_average(
    averages: Sequence[tf.Variable], currents: Sequence[tf.Variable], decay: tf.Tensor
) -> None:
    """θ̄ ← d·θ̄ + (1 − d)·θ for each pair of variables."""
    for average, current in zip(averages, currents, strict=True):
        average.assign(decay * average + (1.0 - decay) * current)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's batch-norm layers in the order the forward pass meets them."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def reestimate_batch_norm(model: keras.Model, images: np.ndarray, batch_size: int) -> int:
    """Set every batch-norm layer's moving mean and variance to the mean and (biased)
    variance of its inputs over ``images`` (in [-1, 1]), with the model in inference
    mode; return how many layers were set.

    Layers are done in order, one pass over ``images`` each, so each layer measures
    inputs already normalised by the re-estimated layers before it: afterwards every
    layer's statistics are exactly those of the activations the model produces at
    inference on ``images`` (dropout off, as in serving).
    """
    layers = batch_norm_layers(model)
    for layer in layers:
        probe = keras.Model(model.inputs, layer.input)
        count, total, squares = 0, 0.0, 0.0
        for start in range(0, len(images), batch_size):
            batch = tf.convert_to_tensor(images[start : start + batch_size], tf.float32)
            values = tf.cast(probe(batch, training=False), tf.float64)
            axes = list(range(len(values.shape) - 1))
            count += int(np.prod([values.shape[a] for a in axes]))
            total += tf.reduce_sum(values, axis=axes)
            squares += tf.reduce_sum(tf.square(values), axis=axes)
        mean = total / count
        variance = tf.maximum(squares / count - tf.square(mean), 0.0)
        layer.moving_mean.assign(tf.cast(mean, layer.moving_mean.dtype))
        layer.moving_variance.assign(tf.cast(variance, layer.moving_variance.dtype))
    return len(layers)
