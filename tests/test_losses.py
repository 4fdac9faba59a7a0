"""Each loss against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from ssgan.models.losses import (
    feature_matching_loss,
    real_logit,
    supervised_loss,
    unsupervised_discriminator_loss,
)

pytestmark = pytest.mark.unit


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_real_logit_is_logsumexp() -> None:
    # logits (0, ln 3): Z = 1 + 3 = 4, so the real logit is ln 4.
    assert float(real_logit(tf.constant([[0.0, math.log(3.0)]]))[0]) == pytest.approx(math.log(4))


def test_supervised_loss_hand_computed() -> None:
    # p(y=1) = 3/4 for logits (0, ln 3); p(y=0) = 1/2 for (0, 0): mean(-ln 3/4, -ln 1/2).
    logits = tf.constant([[0.0, math.log(3.0)], [0.0, 0.0]])
    expected = (-math.log(0.75) - math.log(0.5)) / 2
    value = supervised_loss(logits=logits, labels=tf.constant([1, 0]))
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_unsupervised_loss_hand_computed() -> None:
    # real logits (0, ln 3): s = ln 4, D(x) = 4/5, -log D = ln(5/4).
    # fake logits (0, 0): s = ln 2, D = 2/3, -log(1 - D) = ln 3.
    real = tf.constant([[0.0, math.log(3.0)]])
    fake = tf.constant([[0.0, 0.0]])
    value = unsupervised_discriminator_loss(real_logits=real, fake_logits=fake)
    assert float(value) == pytest.approx(math.log(5 / 4) + math.log(3), rel=1e-6)
    # The same through the softplus form: -(s - softplus(s)) + softplus(s_fake).
    s, s_fake = math.log(4), math.log(2)
    assert float(value) == pytest.approx(-(s - softplus(s)) + softplus(s_fake), rel=1e-6)


def test_unsupervised_loss_stays_finite_for_huge_logits() -> None:
    real = tf.constant([[1e4, -1e4, 0.0]])
    fake = tf.constant([[-1e4, -1e4, -1e4]])
    value = float(unsupervised_discriminator_loss(real_logits=real, fake_logits=fake))
    assert math.isfinite(value) and value == pytest.approx(0.0, abs=1e-3)
    confident_wrong = float(unsupervised_discriminator_loss(real_logits=fake, fake_logits=real))
    assert math.isfinite(confident_wrong) and confident_wrong > 1e4


def test_feature_matching_hand_computed() -> None:
    # batch means: real (2, 4), fake (1, 1) -> difference (1, 3).
    real = tf.constant([[1.0, 3.0], [3.0, 5.0]])
    fake = tf.constant([[0.0, 1.0], [2.0, 1.0]])
    assert float(feature_matching_loss(real_features=real, fake_features=fake)) == pytest.approx(
        1.0 + 9.0
    )
    l1 = feature_matching_loss(real_features=real, fake_features=fake, kind="l1")
    assert float(l1) == pytest.approx((1.0 + 3.0) / 2)
    with pytest.raises(ValueError, match="squared_l2"):
        feature_matching_loss(real_features=real, fake_features=fake, kind="l3")


def test_losses_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        supervised_loss(tf.zeros([1, 10]), tf.zeros([1], tf.int32))  # type: ignore[misc]
    np.testing.assert_allclose(
        float(feature_matching_loss(real_features=tf.ones([2, 3]), fake_features=tf.ones([2, 3]))),
        0.0,
    )
