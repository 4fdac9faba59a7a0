"""``method=fixmatch``: Sohn et al. 2020, "FixMatch: Simplifying Semi-Supervised Learning
with Consistency and Confidence". Each step reads ``method.unlabelled_ratio`` (mu)
unlabelled images per labelled one; the classifier's prediction on a weakly augmented
copy, where it is confident (max probability >= ``method.threshold``), becomes the hard
label for a strongly augmented copy (RandAugment + Cutout, :mod:`ssgan.methods.augment`):

    loss = CE(f(weak(x_l)), y)
           + lambda_u * mean_u 1[max p(weak(u)) >= tau] CE(argmax p(weak(u)), f(strong(u)))
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from ssgan.method_config import FixMatchMethod
from ssgan.methods import augment
from ssgan.methods.base import ClassifierMethod
from ssgan.models import losses
from ssgan.models.flops import layer_forward_flops


class FixMatch(ClassifierMethod):
    """The classifier with weak/strong augmentation and confident pseudo-labels."""

    metric_keys: ClassVar[tuple[str, ...]] = (
        "d_loss", "d_supervised_loss", "unlabelled_loss", "pseudo_label_share",
    )  # fmt: skip
    method: FixMatchMethod
    augments: ClassVar[bool] = True

    def step_flops(self, batch_size: int) -> float:
        """Forward + backward on B labelled and 2 mu B augmented unlabelled images (the
        augmentations themselves are not counted)."""
        images = batch_size * (1 + 2 * self.method.unlabelled_ratio)
        return 3.0 * layer_forward_flops(self.discriminator) * images

    def augmented(self, labelled: tf.Tensor, unlabelled: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """``(weak(x_l), weak(u), strong(u))``."""
        shift = self.method.translate
        return (
            augment.weak(labelled, self.rng, shift),
            augment.weak(unlabelled, self.rng, shift),
            augment.strong(unlabelled, self.rng, self.method.strong_ops, self.method.cutout),
        )

    def _update(
        self, labelled: tf.Tensor, labels: tf.Tensor, unlabelled: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        weak_labelled, weak_unlabelled, strong_unlabelled = self.augmented(labelled, unlabelled)
        count, pool = tf.shape(labelled)[0], tf.shape(unlabelled)[0]
        with tf.GradientTape() as tape:
            # One forward pass over all three, as the paper's code: batch norm sees them
            # together.
            images = tf.concat([weak_labelled, weak_unlabelled, strong_unlabelled], axis=0)
            logits, _ = self.discriminator(images, training=True)
            labelled_logits = logits[:count]
            weak_logits = tf.stop_gradient(logits[count : count + pool])
            strong_logits = logits[count + pool :]
            supervised = losses.supervised_loss(logits=labelled_logits, labels=labels)
            unlabelled_loss, kept = losses.pseudo_label_loss(
                weak_logits=weak_logits,
                strong_logits=strong_logits,
                threshold=self.method.threshold,
            )
            loss = supervised + self.method.unlabelled_weight * unlabelled_loss
            to_minimise = self._gradient_target(loss, self.d_optimizer)
        self._minimise(tape, to_minimise, self.discriminator, self.d_optimizer)
        return {
            "d_loss": loss,
            "d_supervised_loss": supervised,
            "unlabelled_loss": unlabelled_loss,
            "pseudo_label_share": kept,
        }
