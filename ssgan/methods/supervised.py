"""``method=supervised``: the baseline every method is compared with, cross-entropy on the
labelled images only (the unlabelled batch is not read)."""

from __future__ import annotations

import tensorflow as tf

from ssgan.methods.base import ClassifierMethod
from ssgan.models import losses


class SupervisedBaseline(ClassifierMethod):
    """The classifier trained on labels alone."""

    def _update(
        self, labelled: tf.Tensor, labels: tf.Tensor, unlabelled: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits, _ = self.discriminator(labelled, training=True)
            loss = losses.supervised_loss(logits=logits, labels=labels)
            to_minimise = self._gradient_target(loss, self.d_optimizer)
        self._minimise(tape, to_minimise, self.discriminator, self.d_optimizer)
        return {"d_loss": loss, "d_supervised_loss": loss}
