"""The methods' own losses (Bad GAN, Mean Teacher, FixMatch) against numbers worked out
by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from ssgan.models.losses import (
    conditional_entropy_loss,
    consistency_loss,
    pseudo_label_loss,
    pull_away_loss,
    sigmoid_rampup,
)

pytestmark = pytest.mark.unit


# -- conditional entropy (Bad GAN, D on unlabelled images) --------------------------------


@pytest.mark.parametrize("classes", [2, 10])
def test_conditional_entropy_of_uniform_logits_is_log_k(classes: int) -> None:
    # p = 1/K for every class: H = -K (1/K) ln(1/K) = ln K, whatever the (shared) logit.
    logits = tf.fill([3, classes], 1.7)
    assert float(conditional_entropy_loss(logits=logits)) == pytest.approx(math.log(classes))


def test_conditional_entropy_of_confident_logits_is_zero() -> None:
    # p = softmax(100, 0, 0) = (1 - 2e-44, e-44, e-44): H ~ 0 (and no NaN from 0 log 0).
    logits = tf.constant([[100.0, 0.0, 0.0], [0.0, 0.0, 100.0]])
    value = float(conditional_entropy_loss(logits=logits))
    assert math.isfinite(value) and value == pytest.approx(0.0, abs=1e-6)


def test_conditional_entropy_hand_computed_batch_mean() -> None:
    # Row 1, logits (0, ln 3): p = (1/4, 3/4), H = (1/4) ln 4 + (3/4) ln(4/3).
    # Row 2, logits (0, 0):    p = (1/2, 1/2), H = ln 2.   The loss is their mean.
    logits = tf.constant([[0.0, math.log(3.0)], [0.0, 0.0]])
    first = 0.25 * math.log(4.0) + 0.75 * math.log(4.0 / 3.0)
    expected = (first + math.log(2.0)) / 2
    assert float(conditional_entropy_loss(logits=logits)) == pytest.approx(expected, rel=1e-6)


# -- pull-away term (Bad GAN, G on D's features of generated images) ----------------------


def test_pull_away_of_orthogonal_features_is_zero_diagonal_ignored() -> None:
    # cos = 0 between the two; each vector's cosine with itself (1) is not counted.
    features = tf.constant([[3.0, 0.0], [0.0, 0.5]])
    assert float(pull_away_loss(features=features)) == pytest.approx(0.0, abs=1e-7)


def test_pull_away_of_parallel_features_is_one_whatever_their_norms() -> None:
    # (1, 2) and (2, 4): cos = 1; (1, 0) and (-5, 0): cos = -1, squared 1.
    assert float(pull_away_loss(features=tf.constant([[1.0, 2.0], [2.0, 4.0]]))) == pytest.approx(
        1.0, rel=1e-6
    )
    assert float(pull_away_loss(features=tf.constant([[1.0, 0.0], [-5.0, 0.0]]))) == pytest.approx(
        1.0, rel=1e-6
    )


def test_pull_away_three_vectors_hand_computed() -> None:
    # f1 = (1, 0), f2 = (0, 1), f3 = (1, 1): cos12 = 0, cos13 = cos23 = 1/sqrt 2.
    # sum over ordered pairs i != j of cos^2 = 2 (0 + 1/2 + 1/2) = 2; N (N - 1) = 6 -> 1/3.
    # (Counting the diagonal would give (2 + 3) / 6 or (2 + 3) / 9, not 1/3.)
    features = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert float(pull_away_loss(features=features)) == pytest.approx(1.0 / 3.0, rel=1e-6)


def test_pull_away_of_one_sample_is_zero() -> None:
    # No pair: 0, not a division by zero.
    value = float(pull_away_loss(features=tf.constant([[1.0, 2.0, 3.0]])))
    assert value == 0.0


# -- consistency (Mean Teacher) -----------------------------------------------------------


def test_consistency_is_the_mean_squared_probability_difference() -> None:
    # student (0, 0) -> (1/2, 1/2); teacher (0, ln 3) -> (1/4, 3/4).
    # differences (1/4, -1/4), squared 1/16 each: mean over classes 1/16 (a sum would be 1/8).
    student = tf.constant([[0.0, 0.0]])
    teacher = tf.constant([[0.0, math.log(3.0)]])
    value = consistency_loss(student_logits=student, teacher_logits=teacher)
    assert float(value) == pytest.approx(1.0 / 16.0, rel=1e-6)


def test_consistency_averages_over_images_and_is_zero_where_they_agree() -> None:
    # Row 1 agrees (logits differ by a constant: same probabilities) -> 0.
    # Row 2: student (100, 0) -> (1, 0), teacher (0, 0) -> (1/2, 1/2): squares 1/4, 1/4.
    # Mean over the 2 x 2 entries: (0 + 0 + 1/4 + 1/4) / 4 = 1/8.
    student = tf.constant([[1.0, 2.0], [100.0, 0.0]])
    teacher = tf.constant([[5.0, 6.0], [0.0, 0.0]])
    value = consistency_loss(student_logits=student, teacher_logits=teacher)
    assert float(value) == pytest.approx(1.0 / 8.0, rel=1e-5)
    same = consistency_loss(student_logits=student, teacher_logits=student)
    assert float(same) == 0.0


# -- ramp-up (Mean Teacher's consistency weight) ------------------------------------------


@pytest.mark.parametrize(
    ("step", "length", "expected"),
    [
        (0, 10, math.exp(-5.0)),  # t = 0: exp(-5 * 1^2)
        (5, 10, math.exp(-1.25)),  # t = 1/2: exp(-5 * (1/2)^2) = exp(-1.25)
        (10, 10, 1.0),  # t = 1: exp(0)
        (25, 10, 1.0),  # beyond the ramp-up: t clipped to 1
        (0, 0, 1.0),  # no ramp-up: the full weight from the first step
        (7, 0, 1.0),
    ],
)
def test_sigmoid_rampup(step: int, length: float, expected: float) -> None:
    value = sigmoid_rampup(step=tf.constant(step, tf.int64), length=length)
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_sigmoid_rampup_reads_a_step_variable_and_a_fractional_length() -> None:
    # What Mean Teacher passes: an int64 counter and rampup x total_steps (2.5 here).
    # step 1 of 2.5: t = 0.4, exp(-5 * 0.6^2) = exp(-1.8).
    step = tf.Variable(1, dtype=tf.int64)
    assert float(sigmoid_rampup(step=step, length=2.5)) == pytest.approx(math.exp(-1.8), rel=1e-6)


# -- pseudo-labels (FixMatch) -------------------------------------------------------------


def _two_images() -> tuple[tf.Tensor, tf.Tensor]:
    # Image 1: weak logits (ln 19, 0) -> p = (0.95, 0.05): confident, pseudo-label 0.
    # Image 2: weak logits (0, 0)     -> p = (0.5, 0.5): below a 0.9 threshold.
    weak = tf.constant([[math.log(19.0), 0.0], [0.0, 0.0]])
    # Strong logits of image 1, (0, ln 3): p(class 0) = 1/4, CE = ln 4. Image 2's are wild.
    strong = tf.constant([[0.0, math.log(3.0)], [-30.0, 30.0]])
    return weak, strong


def test_pseudo_label_loss_keeps_only_confident_images() -> None:
    # Only image 1 counts, averaged over both images: ln 4 / 2; half the images kept.
    weak, strong = _two_images()
    loss, share = pseudo_label_loss(weak_logits=weak, strong_logits=strong, threshold=0.9)
    assert float(loss) == pytest.approx(math.log(4.0) / 2, rel=1e-6)
    assert float(share) == pytest.approx(0.5)


def test_pseudo_label_threshold_is_reached_at_equality() -> None:
    # p = 1/2 exactly for image 2, threshold 0.5: kept, target argmax = class 0 (first);
    # strong (-30, 30): CE = -log softmax(-30, 30)_0 = 60 + log(1 + e^-60) ~ 60.
    weak, strong = _two_images()
    loss, share = pseudo_label_loss(weak_logits=weak, strong_logits=strong, threshold=0.5)
    assert float(share) == 1.0
    assert float(loss) == pytest.approx((math.log(4.0) + 60.0) / 2, rel=1e-5)


def test_pseudo_label_threshold_above_every_confidence_gives_zero() -> None:
    weak, strong = _two_images()
    loss, share = pseudo_label_loss(weak_logits=weak, strong_logits=strong, threshold=0.99)
    assert float(loss) == 0.0 and float(share) == 0.0


def test_pseudo_label_gradient_reaches_only_kept_strong_logits() -> None:
    # The unconfident image trains nothing; the weak logits are a hard target (no gradient).
    weak, strong = _two_images()
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([weak, strong])
        loss, _ = pseudo_label_loss(weak_logits=weak, strong_logits=strong, threshold=0.9)
    grad = tape.gradient(loss, strong).numpy()
    # d(CE/2)/d logits = (softmax - onehot) / 2 = ((1/4 - 1) / 2, (3/4) / 2) for image 1.
    np.testing.assert_allclose(grad[0], [-0.375, 0.375], rtol=1e-5)
    np.testing.assert_array_equal(grad[1], [0.0, 0.0])
    weak_grad = tape.gradient(loss, weak)
    assert weak_grad is None or not np.any(weak_grad.numpy())


def test_new_losses_are_keyword_only() -> None:
    logits = tf.zeros([2, 3])
    for call in (
        lambda: conditional_entropy_loss(logits),  # type: ignore[misc]
        lambda: pull_away_loss(logits),  # type: ignore[misc]
        lambda: consistency_loss(logits, logits),  # type: ignore[misc]
        lambda: sigmoid_rampup(0, 10),  # type: ignore[misc]
        lambda: pseudo_label_loss(logits, logits, 0.5),  # type: ignore[misc]
    ):
        with pytest.raises(TypeError):
            call()
