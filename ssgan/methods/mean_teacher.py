"""``method=mean_teacher``: Tarvainen & Valpola 2017, "Mean teachers are better role
models". The student (the classifier) learns from labels and from agreeing with a
teacher, an exponential moving average of the student's weights, on differently perturbed
copies of every image (labelled and unlabelled):

    loss = CE(student(x_l), y) + w(t) * mean (softmax student(x~) - softmax teacher(x~'))^2

with w(t) ramped up by exp(-5 (1 - t)^2) over the first ``method.rampup`` of the run. The
teacher is what the run evaluates and exports (checkpointed as the averaged classifier).
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import tensorflow as tf

from ssgan.method_config import MeanTeacherMethod
from ssgan.methods import augment
from ssgan.methods.base import ClassifierMethod
from ssgan.models import losses
from ssgan.models.averaging import update_average
from ssgan.models.flops import layer_forward_flops
from ssgan.models.networks import build_discriminator


class MeanTeacher(ClassifierMethod):
    """Student, teacher, and the count of updates the ramp-up reads."""

    metric_keys: ClassVar[tuple[str, ...]] = (
        "d_loss", "d_supervised_loss", "consistency_loss", "consistency_weight",
    )  # fmt: skip
    method: MeanTeacherMethod
    augments: ClassVar[bool] = True

    def _build_state(self) -> None:
        self.teacher = build_discriminator(self.model)
        self.teacher.set_weights(self.discriminator.get_weights())
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)

    def networks(self) -> list[keras.Model]:
        return [self.discriminator, self.teacher]

    def _extra_checkpoint_objects(self) -> dict[str, Any]:
        # The averaged classifier's slot: ``export --checkpoint last`` reads it from there.
        return {"ema_discriminator": self.teacher, "teacher_updates": self.updates}

    def _after_initialize(self, noise_count: int) -> None:
        self.teacher.set_weights(self.discriminator.get_weights())

    def classifier(self) -> keras.Model:
        return self.teacher

    def step_flops(self, batch_size: int) -> float:
        """Teacher forward and student forward + backward on the 2B labelled and
        unlabelled images."""
        return (1.0 + 3.0) * layer_forward_flops(self.discriminator) * 2 * batch_size

    def _rampup_steps(self) -> float:
        return self.method.rampup * self.total_steps

    def _perturbed(self, images: tf.Tensor) -> tf.Tensor:
        shifted = augment.weak(images, self.rng, self.method.translate)
        return augment.gaussian_noise(shifted, self.rng, self.method.input_noise)

    def augmented(self, labelled: tf.Tensor, unlabelled: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The teacher's and the student's perturbed copies of every image (labelled
        first), in that order."""
        images = tf.concat([labelled, unlabelled], axis=0)
        return self._perturbed(images), self._perturbed(images)

    def _update(
        self, labelled: tf.Tensor, labels: tf.Tensor, unlabelled: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        for_teacher, for_student = self.augmented(labelled, unlabelled)
        # The teacher runs in training mode (dropout, its own batch statistics), as in the
        # paper; its output is a target only.
        teacher_logits, _ = self.teacher(for_teacher, training=True)
        teacher_logits = tf.stop_gradient(teacher_logits)
        weight = self.method.consistency_weight * losses.sigmoid_rampup(
            step=self.updates, length=self._rampup_steps()
        )
        with tf.GradientTape() as tape:
            logits, _ = self.discriminator(for_student, training=True)
            count = tf.shape(labelled)[0]
            supervised = losses.supervised_loss(logits=logits[:count], labels=labels)
            consistency = losses.consistency_loss(
                student_logits=logits, teacher_logits=teacher_logits
            )
            loss = supervised + weight * consistency
            to_minimise = self._gradient_target(loss, self.d_optimizer)
        self._minimise(tape, to_minimise, self.discriminator, self.d_optimizer)
        return {
            "d_loss": loss,
            "d_supervised_loss": supervised,
            "consistency_loss": consistency,
            "consistency_weight": weight,
        }

    def _after_step(self) -> None:
        """The teacher takes in the student's new weights: decay ``teacher_decay`` during
        the ramp-up, ``teacher_decay_after`` later, and at most 1 - 1/(t + 1) so that the
        first updates are not dominated by the random initial weights (the paper's code)."""
        in_rampup = tf.cast(self.updates, tf.float32) < self._rampup_steps()
        decay = tf.where(in_rampup, self.method.teacher_decay, self.method.teacher_decay_after)
        warm = 1.0 - 1.0 / (tf.cast(self.updates, tf.float32) + 1.0)
        update_average(
            self.teacher.trainable_weights,
            self.discriminator.trainable_weights,
            tf.minimum(tf.cast(decay, tf.float32), warm),
        )
        self.updates.assign_add(1)
