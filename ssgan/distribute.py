"""Scale-out and numeric precision through TensorFlow's own machinery.

``train.strategy``: ``default`` (one device), ``mirrored`` (all local GPUs, or the
logical CPUs of one machine), ``multi_worker`` (several machines, configured by the
``TF_CONFIG`` environment variable). ``data.batch_size`` is the global batch: a strategy
splits it over its replicas. ``train.precision``: Keras mixed precision policies.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from omegaconf import DictConfig

from ssgan.errors import ConfigError

_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def make_strategy(train_cfg: DictConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by ``train.strategy``; also sets the precision."""
    set_precision(str(train_cfg.precision))
    name = str(train_cfg.strategy)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(
        f"train.strategy={name} is not a valid choice: allowed default, mirrored, multi_worker"
    )


def set_precision(precision: str) -> None:
    """Set Keras' global dtype policy before any network is built."""
    if precision not in _POLICIES:
        raise ConfigError(
            f"train.precision={precision} is not a valid choice: allowed fp32, bf16, fp16"
        )
    keras.mixed_precision.set_global_policy(_POLICIES[precision])
