"""Losses of the semi-supervised GAN (Salimans et al. 2016, "Improved Techniques for
Training GANs", section 5), as pure functions of logits and features.

The discriminator has K class logits l_1..l_K; the "fake" class is given logit 0 (the
K+1 trick), so D(x) = Z(x) / (Z(x) + 1) with Z(x) = sum_k exp(l_k(x)).
"""

from __future__ import annotations

import tensorflow as tf


def real_logit(logits: tf.Tensor) -> tf.Tensor:
    """log Z(x) = logsumexp_k l_k(x): the logit of "real" against the implicit fake class."""
    return tf.reduce_logsumexp(tf.cast(logits, tf.float32), axis=-1)


def supervised_loss(*, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy of the K real classes on labelled images: -E log p(y | x, y < K+1)."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32)
        )
    )


def unsupervised_discriminator_loss(*, real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """-E_x log D(x) - E_z log(1 - D(G(z))), with D(x) = sigmoid(logsumexp l(x)).

    log D(x) = s - softplus(s) and log(1 - D) = -softplus(s) for s = logsumexp(l):
    both stay finite for logits of any size.
    """
    real, fake = real_logit(real_logits), real_logit(fake_logits)
    return -tf.reduce_mean(real - tf.nn.softplus(real)) + tf.reduce_mean(tf.nn.softplus(fake))


def feature_matching_loss(
    *, real_features: tf.Tensor, fake_features: tf.Tensor, kind: str = "squared_l2"
) -> tf.Tensor:
    """Distance between batch means of D's intermediate features on real and generated
    images. ``squared_l2``: ||E f(x) - E f(G(z))||^2 (the paper, eq. 3); ``l1``: mean of
    |E f(x) - E f(G(z))| over features (Salimans et al.'s released code)."""
    difference = tf.reduce_mean(tf.cast(real_features, tf.float32), axis=0) - tf.reduce_mean(
        tf.cast(fake_features, tf.float32), axis=0
    )
    if kind == "squared_l2":
        return tf.reduce_sum(tf.square(difference))
    if kind == "l1":
        return tf.reduce_mean(tf.abs(difference))
    raise ValueError(f"feature matching kind must be 'squared_l2' or 'l1', got {kind!r}")
