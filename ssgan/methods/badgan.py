"""``method=badgan``: SSGAN plus Bad GAN's two terms (Dai et al. 2017, "Good
Semi-supervised Learning that Requires a Bad GAN", section 5): D's conditional entropy on
unlabelled images (confident predictions where there is data) and G's pull-away term on
D's features of generated images (samples spread out, away from each other)."""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from ssgan.method_config import BadGANMethod
from ssgan.methods.gan import FeatureMatchingGAN
from ssgan.models import losses


class BadGAN(FeatureMatchingGAN):
    """The feature-matching GAN with ``method.entropy_weight`` and
    ``method.pull_away_weight`` terms."""

    metric_keys: ClassVar[tuple[str, ...]] = (
        *FeatureMatchingGAN.metric_keys, "d_entropy_loss", "g_pull_away_loss",
    )  # fmt: skip
    method: BadGANMethod

    def _discriminator_terms(
        self, real_logits: tf.Tensor
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        entropy = losses.conditional_entropy_loss(logits=real_logits)
        return self.method.entropy_weight * entropy, {"d_entropy_loss": entropy}

    def _generator_terms(self, fake_features: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        pull_away = losses.pull_away_loss(features=fake_features)
        return self.method.pull_away_weight * pull_away, {"g_pull_away_loss": pull_away}
