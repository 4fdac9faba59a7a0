"""``method=ssgan``: the semi-supervised GAN with feature matching.

Salimans et al. 2016, "Improved Techniques for Training GANs": the discriminator is a
K-class classifier whose implicit (K+1)-th class is "generated"; it is trained on a
labelled batch (cross-entropy) and on unlabelled and generated batches (real/fake);
the generator is trained by feature matching on the discriminator's pooled features.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from ssgan.method_config import FeatureMatchingMethod
from ssgan.methods.base import ClassifierMethod
from ssgan.models import losses
from ssgan.models.flops import layer_forward_flops
from ssgan.models.networks import build_discriminator, build_generator, data_dependent_init

# Streams of fixed noise, apart from the training stream: G's initialisation, sample grids.
INIT_NOISE, SAMPLE_NOISE = 1, 7


def latent_noise(rng: tf.random.Generator, batch_size: Any, z_size: int) -> tf.Tensor:
    """z ~ U(-1, 1)^z_size, the generator's input distribution (the tutorial's and
    Salimans et al.'s): every z -- training, initialisation, sample grids -- comes from here."""
    return rng.uniform([batch_size, z_size], -1.0, 1.0)


class FeatureMatchingGAN(ClassifierMethod):
    """Generator and discriminator, their optimizers, the latent-noise stream."""

    metric_keys: ClassVar[tuple[str, ...]] = (
        "d_loss", "g_loss", "d_supervised_loss", "d_unsupervised_loss",
    )  # fmt: skip
    generates_images: ClassVar[bool] = True
    method: FeatureMatchingMethod

    def _build_networks(self) -> None:
        # G first: the order the networks draw their initial weights in is part of a
        # run's seed.
        self.generator = build_generator(self.model)
        self.discriminator = build_discriminator(self.model)

    def _build_optimizers(self) -> None:
        self.d_optimizer = self._adam(self.discriminator)
        self.g_optimizer = self._adam(self.generator)

    def networks(self) -> list[keras.Model]:
        return [self.generator, self.discriminator]

    def optimizers(self) -> list[keras.optimizers.Optimizer]:
        return [self.d_optimizer, self.g_optimizer]

    def _extra_checkpoint_objects(self) -> dict[str, Any]:
        return {"generator": self.generator, "g_optimizer": self.g_optimizer}

    def _after_initialize(self, noise_count: int) -> None:
        # Fixed noise: initialising leaves the training noise stream untouched.
        data_dependent_init(self.generator, self.fixed_noise(noise_count, INIT_NOISE))

    def fixed_noise(self, count: int, stream: int = SAMPLE_NOISE) -> tf.Tensor:
        """``count`` z vectors from the training distribution, the same every time for a
        given ``train.seed`` and ``stream``, drawn without touching the training stream."""
        seed = np.random.SeedSequence([self.train.seed, stream]).generate_state(1)[0]
        rng = tf.random.Generator.from_seed(int(seed))
        return latent_noise(rng, count, self.model.z_size)

    def samples(self, noise: tf.Tensor) -> tf.Tensor:
        """Generated images for ``noise``, in [-1, 1] (inference mode)."""
        return self.generator(noise, training=False)

    def step_flops(self, batch_size: int) -> float:
        """D update: G forward on B noise vectors, D forward + backward on 3B images
        (labelled, unlabelled, generated); G update: G forward + backward on B, D forward +
        input gradient on B generated images, D forward on B real images for the feature
        statistics (Bad GAN's extra terms are negligible next to these)."""
        d = layer_forward_flops(self.discriminator)
        g = layer_forward_flops(self.generator)
        return ((g + 3.0 * 3.0 * d) + (3.0 * g + 2.0 * d + d)) * batch_size

    def _noise(self, batch_size: tf.Tensor) -> tf.Tensor:
        """Training noise, from the checkpointed random generator."""
        return latent_noise(self.rng, batch_size, self.model.z_size)

    # -- the step ---------------------------------------------------------------------

    def _update(
        self, labelled: tf.Tensor, labels: tf.Tensor, unlabelled: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """The reference code's order: a D step on labelled, unlabelled and generated
        images, then a G step by feature matching against a fresh generated batch."""
        batch_size = tf.shape(unlabelled)[0]
        fake = self.generator(self._noise(batch_size), training=True)
        with tf.GradientTape() as tape:
            labelled_logits, _ = self.discriminator(labelled, training=True)
            real_logits, _ = self.discriminator(unlabelled, training=True)
            fake_logits, _ = self._discriminate_generated(fake)
            supervised = losses.supervised_loss(logits=labelled_logits, labels=labels)
            unsupervised = losses.unsupervised_discriminator_loss(
                real_logits=real_logits, fake_logits=fake_logits
            )
            extra_d, d_metrics = self._discriminator_terms(real_logits)
            d_loss = supervised + self.method.unsupervised_weight * unsupervised + extra_d
            to_minimise = self._gradient_target(d_loss, self.d_optimizer)
        self._minimise(tape, to_minimise, self.discriminator, self.d_optimizer)
        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(batch_size), training=True)
            _, fake_features = self._discriminate_generated(fake)
            _, real_features = self.discriminator(unlabelled, training=True)
            matching = losses.feature_matching_loss(
                real_features=tf.stop_gradient(real_features),
                fake_features=fake_features,
                kind=self.method.feature_matching,
            )
            extra_g, g_metrics = self._generator_terms(fake_features)
            g_loss = matching + extra_g
            to_minimise = self._gradient_target(g_loss, self.g_optimizer)
        self._minimise(tape, to_minimise, self.generator, self.g_optimizer)
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_supervised_loss": supervised,
            "d_unsupervised_loss": unsupervised,
            **d_metrics,
            **g_metrics,
        }

    def _discriminator_terms(
        self, real_logits: tf.Tensor
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Terms a variant adds to D's loss on unlabelled logits (none here)."""
        return tf.zeros([], tf.float32), {}

    def _generator_terms(self, fake_features: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Terms a variant adds to G's loss on D's features of generated images."""
        return tf.zeros([], tf.float32), {}

    def _discriminate_generated(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """D in training mode on generated images, leaving its batch-norm moving
        statistics as they were: inference must normalise with real-image statistics
        only, or the exported classifier sees a mixture it never meets in serving."""
        saved = [tf.identity(v) for v in self._moving_statistics]
        logits, features = self.discriminator(images, training=True)
        # Variable reads and writes keep program order inside tf.function, so this
        # restore runs after the batch-norm updates of the call above.
        with tf.control_dependencies([logits, features]):
            for variable, value in zip(self._moving_statistics, saved, strict=True):
                variable.assign(value)
        return logits, features
