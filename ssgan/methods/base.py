"""What every training method shares: the classifier network (the GAN's discriminator,
built from ``model.*``, so methods differ only in how they train it), its Adam optimizer,
the checkpointed random generator, optional weight averaging (``train.ema_decay``), the
compiled multi-step loop and the arithmetic of replicas. A method subclasses
:class:`ClassifierMethod` and writes :meth:`ClassifierMethod._update`, one step on one
replica's ``(labelled_images, labels, unlabelled_images)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import tensorflow as tf

from ssgan.config import ModelConfig, TrainConfig
from ssgan.errors import ConfigError
from ssgan.method_config import MethodConfig
from ssgan.models.averaging import (
    batch_norm_layers,
    ema_decay_at,
    reestimate_batch_norm,
    update_average,
)
from ssgan.models.flops import layer_forward_flops
from ssgan.models.networks import build_discriminator, data_dependent_init


class ClassifierMethod:
    """One method's networks, optimizers, random generator and compiled step."""

    # The losses one step returns, logged as ``train/<key>``; "d_loss" (the classifier's
    # whole loss) and "d_supervised_loss" (its labelled cross-entropy) in every method.
    metric_keys: ClassVar[tuple[str, ...]] = ("d_loss", "d_supervised_loss")
    generates_images: ClassVar[bool] = False  # a generator whose samples the run logs
    augments: ClassVar[bool] = False  # :meth:`augmented` draws the step's augmentations

    def __init__(
        self,
        model: ModelConfig,
        train: TrainConfig,
        method: MethodConfig,
        total_steps: int = 0,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        self.model, self.train, self.method = model, train, method
        self.total_steps = total_steps  # the run's length, for schedules within a method
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            self._build_networks()
            self._build_optimizers()
            self.rng = tf.random.Generator.from_seed(train.seed + 1)
            self.ema_discriminator: keras.Model | None = None
            if train.ema_decay > 0.0:
                self.ema_discriminator = build_discriminator(model)
                self.ema_discriminator.set_weights(self.discriminator.get_weights())
                # Updates averaged so far: the warm-up of the decay counts them.
                self.ema_updates = tf.Variable(0, dtype=tf.int64, trainable=False)
            self._build_state()
        # Keras keeps dropout/noise RNG states outside a model's checkpoint; saving them
        # too is what makes a resumed run draw the same masks as an uninterrupted one.
        self._layer_rng_states = tf.Module()
        self._layer_rng_states.states = [
            variable
            for network in self.networks()
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

    # -- what a method adds (called inside the strategy's scope) --------------------------

    def _build_networks(self) -> None:
        self.discriminator = build_discriminator(self.model)

    def _build_optimizers(self) -> None:
        self.d_optimizer = self._adam(self.discriminator)

    def _build_state(self) -> None:
        """Further variables a method keeps (a teacher, counters)."""

    def networks(self) -> list[keras.Model]:
        """The networks the method trains or keeps (their dropout states are saved)."""
        return [self.discriminator]

    def _extra_checkpoint_objects(self) -> dict[str, Any]:
        return {}

    def _update(
        self, labelled: tf.Tensor, labels: tf.Tensor, unlabelled: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """One step on one replica; returns :attr:`metric_keys`' values."""
        raise NotImplementedError

    def augmented(self, labelled: tf.Tensor, unlabelled: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The augmented copies of one replica's batch that a step feeds its networks,
        drawn from :attr:`rng` in the step's order (a method with :attr:`augments` calls
        it from :meth:`_update`; the training benchmark times it alone); none here."""
        del labelled, unlabelled
        return ()

    # -- public interface -------------------------------------------------------------

    def initialize(self, unlabelled_images: tf.Tensor, noise_count: int | None = None) -> None:
        """Data-dependent initialisation of weight-normalised layers before the first
        step (``improved_gan``: D on real images); a no-op for other networks."""
        data_dependent_init(self.discriminator, tf.convert_to_tensor(unlabelled_images))
        self._after_initialize(noise_count or int(unlabelled_images.shape[0]))
        if self.ema_discriminator is not None:
            self.ema_discriminator.set_weights(self.discriminator.get_weights())

    def _after_initialize(self, noise_count: int) -> None:
        """What a method initialises once D has been (a generator, a teacher)."""

    def step_flops(self, batch_size: int) -> float:
        """FLOPs of one step, counted from the networks' forward cost; backpropagation
        costs about twice a forward pass (input and weight gradients). The baseline:
        the classifier forward and backward on the B labelled images."""
        return 3.0 * layer_forward_flops(self.discriminator) * batch_size

    def set_learning_rate(self, lr: float) -> None:
        for optimizer in self.optimizers():
            optimizer.learning_rate.assign(lr)

    def optimizers(self) -> list[keras.optimizers.Optimizer]:
        return [self.d_optimizer]

    def classifier(self) -> keras.Model:
        """The network to evaluate and export: the averaged copy when EMA is on (call
        :meth:`refresh_classifier_statistics` first when it has batch norm)."""
        return self.ema_discriminator if self.ema_discriminator is not None else self.discriminator

    def refresh_classifier_statistics(self, images: Any, batch_size: int) -> int:
        """Give the averaged classifier the batch-norm statistics of its own activations
        on ``images`` (real training images in [-1, 1]); return how many layers were
        re-estimated. D itself keeps the statistics training gave it."""
        if self.ema_discriminator is None:
            return 0
        return reestimate_batch_norm(self.ema_discriminator, images, batch_size)

    def checkpoint_objects(self) -> dict[str, Any]:
        objects: dict[str, Any] = {
            "discriminator": self.discriminator,
            "d_optimizer": self.d_optimizer,
            "rng": self.rng,
            **self._extra_checkpoint_objects(),
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
        totals = {key: tf.zeros([], tf.float32) for key in self.metric_keys}
        failed = dict(totals)
        finite_steps = tf.zeros([], tf.int64)
        for _ in tf.range(count):
            metrics = {key: tf.cast(value, tf.float32) for key, value in
                       self._step(next(batches)).items()}  # fmt: skip
            finite = tf.reduce_all([tf.math.is_finite(v) for v in metrics.values()])
            if not finite:
                failed = metrics
                break
            totals = {key: totals[key] + metrics[key] for key in self.metric_keys}
            finite_steps += 1
            step.assign_add(1)
        if finite_steps < count:
            result = failed
        else:
            result = {key: totals[key] / tf.cast(count, tf.float32) for key in self.metric_keys}
        return result, finite_steps

    # -- the step ---------------------------------------------------------------------

    def _distributed_step(self, batch: Any) -> dict[str, tf.Tensor]:
        per_replica = self.strategy.run(self._replica_step, args=(batch,))
        # Averaging in cross-replica context: the updated weights are identical on all
        # replicas, so each copy gets the same average without any collective op.
        self._update_ema()
        self._after_step()
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for key, value in per_replica.items()
        }

    def _after_step(self) -> None:
        """Cross-replica work after the optimizers stepped (a teacher's average)."""
        return None  # (a body of only a docstring is one AutoGraph cannot convert)

    def _replica_step(self, batch: Any) -> dict[str, tf.Tensor]:
        labelled, labels, unlabelled = batch
        metrics = self._update(labelled, labels, unlabelled)
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
            for network in self.networks()
            for v in network.non_trainable_variables
            if "moving_" in v.path
        ]
        averaged = context.all_reduce(
            tf.distribute.ReduceOp.MEAN, [tf.identity(v) for v in statistics]
        )
        for variable, value in zip(statistics, averaged, strict=True):
            variable.assign(value)

    def _adam(self, network: keras.Model) -> keras.optimizers.Optimizer:
        adam = keras.optimizers.Adam(
            learning_rate=self.train.lr,
            beta_1=self.train.beta1,
            epsilon=self.train.adam_epsilon,
        )
        if keras.mixed_precision.global_policy().compute_dtype == "float16":
            # float16 gradients underflow: scale the loss up, the gradients back down,
            # and skip (and halve the scale on) any step whose gradients overflowed.
            adam = keras.optimizers.LossScaleOptimizer(adam)
        adam.build(network.trainable_variables)
        return adam

    def _minimise(self, tape: tf.GradientTape, loss: tf.Tensor, network: keras.Model,
                  optimizer: keras.optimizers.Optimizer) -> None:  # fmt: skip
        """One optimizer step on ``network`` for ``loss``, a batch mean that ``tape``
        recorded (call after leaving the tape's context)."""
        variables = network.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

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
