"""Training methods, each a :class:`~ssgan.methods.base.ClassifierMethod` that trains the
same classifier network its own way; ``method=<name>`` picks one (docs/methods.md).

Adding a method: its schema in :mod:`ssgan.method_config` (keys, defaults, the paper),
``conf/method/<name>.yaml`` selecting it, a module here with its ``_update`` (its losses as
pure functions in :mod:`ssgan.models.losses`), and its class in :data:`METHODS`.
"""

from __future__ import annotations

import tensorflow as tf

from ssgan.config import ModelConfig, TrainConfig
from ssgan.method_config import MethodConfig
from ssgan.methods.badgan import BadGAN
from ssgan.methods.base import ClassifierMethod
from ssgan.methods.fixmatch import FixMatch
from ssgan.methods.gan import FeatureMatchingGAN
from ssgan.methods.mean_teacher import MeanTeacher
from ssgan.methods.supervised import SupervisedBaseline

METHODS: dict[str, type[ClassifierMethod]] = {
    "supervised": SupervisedBaseline,
    "ssgan": FeatureMatchingGAN,
    "badgan": BadGAN,
    "mean_teacher": MeanTeacher,
    "fixmatch": FixMatch,
}


def build_method(
    model: ModelConfig,
    train: TrainConfig,
    method: MethodConfig,
    total_steps: int = 0,
    strategy: tf.distribute.Strategy | None = None,
) -> ClassifierMethod:
    """The method ``method.name`` names, with its networks built under ``strategy``."""
    return METHODS[method.name](model, train, method, total_steps, strategy)
