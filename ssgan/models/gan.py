"""The semi-supervised GAN: generator + discriminator, their optimizers, one training step.

Salimans et al. 2016, "Improved Techniques for Training GANs": the discriminator is a
K-class classifier whose implicit (K+1)-th class is "generated"; it is trained on a
labelled batch (cross-entropy) and on unlabelled and generated batches (real/fake);
the generator is trained by feature matching on the discriminator's pooled features.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ssgan.config import ModelConfig, TrainConfig
from ssgan.errors import ConfigError
from ssgan.models import losses
from ssgan.models.averaging import (
    batch_norm_layers,
    ema_decay_at,
    reestimate_batch_norm,
    update_average,
)
from ssgan.models.networks import build_discriminator, build_generator, data_dependent_init

METRIC_KEYS = ("d_loss", "g_loss", "d_supervised_loss", "d_unsupervised_loss")

# Streams of fixed noise, apart from the training stream: G's initialisation, sample grids.
INIT_NOISE, SAMPLE_NOISE = 1, 7


def latent_noise(rng: tf.random.Generator, batch_size: Any, z_size: int) -> tf.Tensor:
    """z ~ U(-1, 1)^z_size, the generator's input distribution (the tutorial's and
    Salimans et al.'s): every z -- training, initialisation, sample grids -- comes from here."""
    return rng.uniform([batch_size, z_size], -1.0, 1.0)


class SemiSupervisedGAN:
    """Networks, optimizers, latent-noise RNG and optional averaged D for one run."""

    def __init__(
        self,
        model: ModelConfig,
        train: TrainConfig,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        self.model, self.train = model, train
        self.strategy = strategy or tf.distribute.get_strategy()
        self.supervised_only = train.mode == "supervised"
        with self.strategy.scope():
            self.generator = build_generator(model)
            self.discriminator = build_discriminator(model)
            self.d_optimizer = self._adam()
            self.g_optimizer = self._adam()
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.g_optimizer.build(self.generator.trainable_variables)
            self.rng = tf.random.Generator.from_seed(train.seed + 1)
            self.ema_discriminator = None
            if train.ema_decay > 0.0:
                self.ema_discriminator = build_discriminator(model)
                self.ema_discriminator.set_weights(self.discriminator.get_weights())
                # Updates averaged so far: the warm-up of the decay counts them.
                self.ema_updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        # Keras keeps dropout/noise RNG states outside a model's checkpoint; saving them
        # too is what makes a resumed run draw the same masks as an uninterrupted one.
        self._layer_rng_states = tf.Module()
        self._layer_rng_states.states = [
            variable
            for network in (self.generator, self.discriminator)
            for variable in network.non_trainable_variables
            if "seed_generator_state" in variable.path
        ]
        self._moving_statistics = [
            v for v in self.discriminator.non_trainable_variables if "moving_" in v.path
        ]
        if train.jit_compile and self.strategy.num_replicas_in_sync > 1:
            raise ConfigError(
                f"train.jit_compile=true works with one replica only, not "
                f"train.strategy={train.strategy} with "
                f"{self.strategy.num_replicas_in_sync}: set train.jit_compile=false"
            )
        self._step = tf.function(self._distributed_step, jit_compile=train.jit_compile)
        # Not jit-compiled itself (it reads the input iterator); under XLA it calls the
        # compiled step. ``count`` is a tensor, so calls of any length share one trace.
        self._loop = tf.function(self._steps_on_device)

    def _adam(self) -> keras.optimizers.Optimizer:
        adam = keras.optimizers.Adam(
            learning_rate=self.train.lr,
            beta_1=self.train.beta1,
            epsilon=self.train.adam_epsilon,
        )
        if keras.mixed_precision.global_policy().compute_dtype == "float16":
            # float16 gradients underflow: scale the loss up, the gradients back down,
            # and skip (and halve the scale on) any step whose gradients overflowed.
            return keras.optimizers.LossScaleOptimizer(adam)
        return adam

    # -- public interface -------------------------------------------------------------

    def initialize(self, unlabelled_images: tf.Tensor, noise_count: int | None = None) -> None:
        """Data-dependent initialisation of weight-normalised layers before the first
        step (``improved_gan``: D on real images, G's output layer on ``noise_count`` z,
        default as many as images; the reference code: 500 images, one batch of 100 z);
        a no-op for networks without such layers."""
        images = tf.convert_to_tensor(unlabelled_images)
        data_dependent_init(self.discriminator, images)
        # Fixed noise: initialising leaves the training noise stream untouched.
        count = int(images.shape[0]) if noise_count is None else int(noise_count)
        data_dependent_init(self.generator, self.fixed_noise(count, INIT_NOISE))
        if self.ema_discriminator is not None:
            self.ema_discriminator.set_weights(self.discriminator.get_weights())

    def fixed_noise(self, count: int, stream: int = SAMPLE_NOISE) -> tf.Tensor:
        """``count`` z vectors from the training distribution, the same every time for a
        given ``train.seed`` and ``stream``, drawn without touching the training stream."""
        seed = np.random.SeedSequence([self.train.seed, stream]).generate_state(1)[0]
        rng = tf.random.Generator.from_seed(int(seed))
        return latent_noise(rng, count, self.model.z_size)

    def set_learning_rate(self, lr: float) -> None:
        self.d_optimizer.learning_rate.assign(lr)
        self.g_optimizer.learning_rate.assign(lr)

    def classifier(self) -> keras.Model:
        """The discriminator to evaluate and export: the averaged copy when EMA is on
        (call :meth:`refresh_classifier_statistics` first when it has batch norm)."""
        return self.ema_discriminator if self.ema_discriminator is not None else self.discriminator

    def refresh_classifier_statistics(self, images: Any, batch_size: int) -> int:
        """Give the averaged discriminator the batch-norm statistics of its own
        activations on ``images`` (real training images in [-1, 1]); return how many
        layers were re-estimated. D itself keeps the statistics training gave it."""
        if self.ema_discriminator is None:
            return 0
        return reestimate_batch_norm(self.ema_discriminator, images, batch_size)

    def checkpoint_objects(self) -> dict[str, Any]:
        objects = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "d_optimizer": self.d_optimizer,
            "g_optimizer": self.g_optimizer,
            "rng": self.rng,
        }
        if self.ema_discriminator is not None:
            objects["ema_discriminator"] = self.ema_discriminator
            objects["ema_updates"] = self.ema_updates
        objects["layer_rng_states"] = self._layer_rng_states
        return objects

    def train_step(self, batch: Any) -> dict[str, tf.Tensor]:
        """One compiled step on ``(labelled_images, labels, unlabelled_images)``."""
        return self._step(batch)

    def train_steps(
        self, batches: Any, count: int, step: tf.Variable
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Up to ``count`` steps in one compiled call, as Keras' ``steps_per_execution``:
        each reads the next batch of the iterator ``batches`` and adds 1 to ``step`` on
        device. Returns ``(losses, finite_steps)``: the losses averaged over the steps
        run, and how many ran. The loop stops at the first step with a non-finite loss,
        without counting it; ``finite_steps < count`` then, and ``losses`` are that
        step's."""
        return self._loop(batches, tf.constant(count, tf.int64), step)

    def _steps_on_device(
        self, batches: Any, count: tf.Tensor, step: tf.Variable
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        totals = {key: tf.zeros([], tf.float32) for key in METRIC_KEYS}
        failed = dict(totals)
        finite_steps = tf.zeros([], tf.int64)
        for _ in tf.range(count):
            metrics = {key: tf.cast(value, tf.float32) for key, value in
                       self._step(next(batches)).items()}  # fmt: skip
            finite = tf.reduce_all([tf.math.is_finite(v) for v in metrics.values()])
            if not finite:
                failed = metrics
                break
            totals = {key: totals[key] + metrics[key] for key in METRIC_KEYS}
            finite_steps += 1
            step.assign_add(1)
        if finite_steps < count:
            result = failed
        else:
            result = {key: totals[key] / tf.cast(count, tf.float32) for key in METRIC_KEYS}
        return result, finite_steps

    # -- the step ---------------------------------------------------------------------

    def _distributed_step(self, batch: Any) -> dict[str, tf.Tensor]:
        per_replica = self.strategy.run(self._replica_step, args=(batch,))
        # Averaging in cross-replica context: the updated weights are identical on all
        # replicas, so each copy gets the same average without any collective op.
        self._update_ema()
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for key, value in per_replica.items()
        }

    def _replica_step(self, batch: Any) -> dict[str, tf.Tensor]:
        labelled, labels, unlabelled = batch
        if self.supervised_only:
            metrics = self._supervised_update(labelled, labels)
        else:
            metrics = self._gan_update(labelled, labels, unlabelled)
        self._average_moving_statistics()
        return metrics

    def _average_moving_statistics(self) -> None:
        """Each replica updates batch-norm moving statistics from its own shard of the
        batch; average them over replicas (one all-reduce per step) so every worker
        evaluates, picks the best epoch and exports the same model. Only across workers
        (multi_worker): that is the path tested for it."""
        context = tf.distribute.get_replica_context()
        multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        if context.num_replicas_in_sync == 1 or not multi_worker:
            return
        statistics = [
            v
            for network in (self.generator, self.discriminator)
            for v in network.non_trainable_variables
            if "moving_" in v.path
        ]
        averaged = context.all_reduce(
            tf.distribute.ReduceOp.MEAN, [tf.identity(v) for v in statistics]
        )
        for variable, value in zip(statistics, averaged, strict=True):
            variable.assign(value)

    def _noise(self, batch_size: tf.Tensor) -> tf.Tensor:
        """Training noise, from the checkpointed random generator."""
        return latent_noise(self.rng, batch_size, self.model.z_size)

    def _supervised_update(self, labelled: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits, _ = self.discriminator(labelled, training=True)
            loss = losses.supervised_loss(logits=logits, labels=labels)
            to_minimise = self._gradient_target(loss, self.d_optimizer)
        self._apply(tape, to_minimise, self.discriminator, self.d_optimizer)
        zero = tf.zeros([], tf.float32)
        return {
            "d_loss": loss,
            "g_loss": zero,
            "d_supervised_loss": loss,
            "d_unsupervised_loss": zero,
        }

    def _gan_update(
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
            d_loss = supervised + self.train.unsupervised_weight * unsupervised
            to_minimise = self._gradient_target(d_loss, self.d_optimizer)
        self._apply(tape, to_minimise, self.discriminator, self.d_optimizer)
        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(batch_size), training=True)
            _, fake_features = self._discriminate_generated(fake)
            _, real_features = self.discriminator(unlabelled, training=True)
            g_loss = losses.feature_matching_loss(
                real_features=tf.stop_gradient(real_features),
                fake_features=fake_features,
                kind=self.train.feature_matching,
            )
            to_minimise = self._gradient_target(g_loss, self.g_optimizer)
        self._apply(tape, to_minimise, self.generator, self.g_optimizer)
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_supervised_loss": supervised,
            "d_unsupervised_loss": unsupervised,
        }

    @staticmethod
    def _gradient_target(loss: tf.Tensor, optimizer: keras.optimizers.Optimizer) -> tf.Tensor:
        """What the tape differentiates (call it inside the tape's context).

        Replicas' gradients are summed, so each replica's batch-mean loss is divided by
        their number: the sum is then the gradient of the global-batch mean. Under
        float16 the loss is also multiplied by the optimizer's dynamic loss scale.
        """
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        loss = loss / float(replicas)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            loss = optimizer.scale_loss(loss)
        return loss

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

    @staticmethod
    def _apply(
        tape: tf.GradientTape,
        loss: tf.Tensor,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
    ) -> None:
        # ``loss`` must have been computed inside the tape's context to have gradients;
        # a LossScaleOptimizer divides the scale back out before Adam sees them.
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    def _update_ema(self) -> None:
        """Warmed-up average of D's trainable weights (:mod:`ssgan.models.averaging`). The
        averaged copy's batch-norm statistics are left alone: D's describe D's weights,
        so they are re-estimated for the average before it is used. Other non-trainable
        weights (weight norm's fixed scales, dropout seeds) are constants: copied."""
        if self.ema_discriminator is None:
            return
        decay = ema_decay_at(self.train.ema_decay, self.ema_updates)
        averaged, live = self.ema_discriminator, self.discriminator
        update_average(averaged.trainable_weights, live.trainable_weights, decay)
        statistics = {
            id(v) for layer in batch_norm_layers(averaged) for v in layer.non_trainable_weights
        }
        pairs = zip(averaged.non_trainable_weights, live.non_trainable_weights, strict=True)
        for average, current in pairs:
            if id(average) not in statistics:
                average.assign(current)
        self.ema_updates.assign_add(1)
