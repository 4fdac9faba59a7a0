"""Scale-out, numeric precision and determinism through TensorFlow's own machinery.

``train.strategy``: ``default`` (one device), ``mirrored`` (all local GPUs, or the
logical CPUs of one machine), ``multi_worker`` (several machines, configured by the
``TF_CONFIG`` environment variable). ``data.batch_size`` is the global batch: a strategy
splits it over its replicas. ``train.precision``: Keras mixed precision policies.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from omegaconf import DictConfig

from ssgan.errors import ConfigError

_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def make_strategy(train_cfg: DictConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by ``train.strategy``; also sets the precision.

    Call it before any network is built (the precision policy applies to layers built
    afterwards) and, for ``multi_worker``, before any other TensorFlow op runs.
    """
    set_precision(str(train_cfg.precision))
    name = str(train_cfg.strategy)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()  # NCCL all-reduce between GPUs
        # Between CPU devices: reduce on one device. The default collective all-reduce
        # can launch D's and G's gradient reductions in different orders on different
        # devices, which aborts the step ("Shape mismatch in the collective instance").
        return tf.distribute.MirroredStrategy(cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multi_worker":
        _check_tf_config()
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


def enable_determinism(train_cfg: DictConfig) -> None:
    """With ``train.deterministic=true``: op determinism, so a run (and a resumed run)
    repeats bit for bit on CPU; ops without a deterministic kernel then raise."""
    if bool(train_cfg.deterministic):
        tf.config.experimental.enable_op_determinism()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process is the one that should log, checkpoint and export: always
    for one machine; under ``multi_worker`` the ``chief`` task, or worker 0 when the
    cluster names no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def _check_tf_config() -> None:
    """A malformed TF_CONFIG is a user error: say so in one line, not a traceback."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return  # no cluster: MultiWorkerMirroredStrategy runs as a single local worker
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({err.msg}): see README, Scale-out"
        ) from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ConfigError(
            'TF_CONFIG must be a JSON object with "cluster" and "task", e.g. '
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
