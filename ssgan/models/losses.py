"""Losses of every training method (ssgan/methods/), as pure keyword-only functions of
logits and features. First the semi-supervised GAN's (Salimans et al. 2016, "Improved
Techniques for Training GANs", section 5), then Bad GAN's, Mean Teacher's and FixMatch's.

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


def conditional_entropy_loss(*, logits: tf.Tensor) -> tf.Tensor:
    """-E_x sum_k p(k|x) log p(k|x) over the K classes: Dai et al. 2017 ("Good
    Semi-supervised Learning that Requires a Bad GAN", section 5) add it to D's loss on
    unlabelled images so that D is confident there."""
    log_p = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return -tf.reduce_mean(tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1))


def pull_away_loss(*, features: tf.Tensor) -> tf.Tensor:
    """Mean squared cosine similarity between different generated images' features,
    sum_{i != j} cos(f_i, f_j)^2 / (N (N - 1)): the pull-away term of Zhao et al. 2017
    (EBGAN, eq. 6), which Dai et al. 2017 add to G's loss to spread its samples."""
    normalised = tf.math.l2_normalize(tf.cast(features, tf.float32), axis=-1)
    count = tf.shape(normalised)[0]
    cosine = tf.matmul(normalised, normalised, transpose_b=True)
    off_diagonal = 1.0 - tf.eye(count, dtype=tf.float32)
    pairs = tf.cast(count * (count - 1), tf.float32)
    return tf.reduce_sum(tf.square(cosine * off_diagonal)) / tf.maximum(pairs, 1.0)


def consistency_loss(*, student_logits: tf.Tensor, teacher_logits: tf.Tensor) -> tf.Tensor:
    """Mean over images and classes of (softmax(student) - softmax(teacher))^2: Mean
    Teacher's consistency cost (Tarvainen & Valpola 2017, section 2; MSE of the class
    probabilities). The teacher's logits are a target: the caller stops their gradient."""
    student = tf.nn.softmax(tf.cast(student_logits, tf.float32), axis=-1)
    teacher = tf.nn.softmax(tf.cast(teacher_logits, tf.float32), axis=-1)
    return tf.reduce_mean(tf.square(student - teacher))


def sigmoid_rampup(*, step: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """exp(-5 (1 - t)^2) with t = step / length clipped to [0, 1] (Laine & Aila 2017,
    the ramp-up Mean Teacher uses); 1 when ``length`` is 0."""
    length = tf.cast(length, tf.float32)
    t = tf.clip_by_value(tf.cast(step, tf.float32) / tf.maximum(length, 1.0), 0.0, 1.0)
    return tf.where(length > 0.0, tf.exp(-5.0 * tf.square(1.0 - t)), 1.0)


def pseudo_label_loss(
    *, weak_logits: tf.Tensor, strong_logits: tf.Tensor, threshold: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """FixMatch's unlabelled loss (Sohn et al. 2020, eq. 4): the cross-entropy of the
    strongly augmented image against the weak one's most likely class, counted only where
    that class's probability reaches ``threshold``, averaged over all unlabelled images.
    Returns ``(loss, share of images kept)``. The weak logits are a target: the caller
    stops their gradient."""
    probabilities = tf.nn.softmax(tf.cast(weak_logits, tf.float32), axis=-1)
    kept = tf.cast(tf.reduce_max(probabilities, axis=-1) >= threshold, tf.float32)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.argmax(probabilities, axis=-1, output_type=tf.int32),
        logits=tf.cast(strong_logits, tf.float32),
    )
    return tf.reduce_mean(cross_entropy * kept), tf.reduce_mean(kept)
