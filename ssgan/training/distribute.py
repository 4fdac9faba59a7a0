"""Scale-out, numeric precision and determinism through TensorFlow's own machinery.

``train.strategy``: ``default`` (one device), ``mirrored`` (all local GPUs, or the
logical CPUs of one machine), ``multi_worker`` (several machines, configured by the
``TF_CONFIG`` environment variable). ``data.batch_size`` is the global batch: a strategy
splits it over its replicas. ``train.precision``: Keras mixed precision policies.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ssgan.config import TrainConfig
from ssgan.errors import ConfigError
from ssgan.tracking.tags import WORKERS_TAG

_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def make_strategy(train: TrainConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by ``train.strategy``; also sets the precision.

    Call it before any network is built (the precision policy applies to layers built
    afterwards) and, for ``multi_worker``, before any other TensorFlow op runs.
    """
    set_precision(train.precision)
    name = train.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()  # NCCL all-reduce between GPUs
        _split_cpu(train.cpu_replicas)
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


def _split_cpu(replicas: int) -> None:
    """``train.cpu_replicas`` > 1: N logical CPU devices, one replica each, so the
    mirrored path (per-replica batches, cross-replica reductions) runs without GPUs."""
    if replicas <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas
        )
    except RuntimeError as err:  # TensorFlow's devices exist already (not in ssgan.train)
        if len(tf.config.list_logical_devices("CPU")) != replicas:
            raise ConfigError(
                f"train.cpu_replicas={replicas}: TensorFlow's devices were already set up in "
                "this process; set it before TensorFlow runs any op"
            ) from err


def set_precision(precision: str) -> None:
    """Set Keras' global dtype policy before any network is built."""
    if precision not in _POLICIES:
        raise ConfigError(
            f"train.precision={precision} is not a valid choice: allowed fp32, bf16, fp16"
        )
    keras.mixed_precision.set_global_policy(_POLICIES[precision])


def enable_determinism(train: TrainConfig) -> None:
    """With ``train.deterministic=true``: op determinism, so a run (and a resumed run)
    repeats bit for bit on CPU; ops without a deterministic kernel then raise."""
    if train.deterministic:
        tf.config.experimental.enable_op_determinism()


@dataclass(frozen=True)
class WorkerRole:
    """Who this process is in its job, and where it writes: the one place that decides.

    One job is one MLflow run whatever the number of workers. The chief creates or
    resumes the run, logs, checkpoints into the run, exports and uploads; every other
    worker trains in lockstep, records nothing, and saves its checkpoints (tf.distribute
    needs every worker to take part in a save) into a private folder of its own.
    """

    chief: bool = True
    index: int = 0  # rank in the cluster, chief first
    count: int = 1
    tasks: tuple[tuple[str, str], ...] = ()  # (TF_CONFIG task name, address), chief first

    @property
    def tags(self) -> dict[str, str]:
        return {WORKERS_TAG: str(self.count)}  # a run is recorded by its chief only

    def checkpoint_dir(self, run_checkpoints: Path, private: Path) -> Path:
        """The chief's checkpoints are the run's; another worker starts from a copy of
        them in ``private`` (so it resumes at the same step) and writes there."""
        if self.chief:
            return run_checkpoints
        shutil.rmtree(private, ignore_errors=True)
        if run_checkpoints.is_dir():
            shutil.copytree(run_checkpoints, private)
        else:
            private.mkdir(parents=True)
        return private


def worker_role(train: TrainConfig) -> WorkerRole:
    """This process's role, from ``TF_CONFIG`` under ``train.strategy=multi_worker``
    (the ``chief`` task, else worker 0, is the chief); the only worker otherwise."""
    raw = os.environ.get("TF_CONFIG")
    if train.strategy != "multi_worker" or not raw:
        return WorkerRole()
    _check_tf_config()
    config = json.loads(raw)
    cluster, task = config["cluster"], config["task"]
    order = [(kind, i) for kind in ("chief", "worker") for i in range(len(cluster.get(kind, [])))]
    me = (str(task.get("type")), int(task.get("index", 0)))
    if me not in order:
        raise ConfigError(f"TF_CONFIG: task {me[0]} {me[1]} is not in its cluster {cluster}")
    tasks = tuple((f"{kind} {i}", str(cluster[kind][i])) for kind, i in order)
    return WorkerRole(order.index(me) == 0, order.index(me), len(order), tasks)


def share_run_id(strategy: tf.distribute.Strategy, role: WorkerRole, run_id: str | None) -> str:
    """Every worker learns the chief's run id through one all-reduce (no shared folder
    needed); the chief passes None when it could not open the run, and every other
    worker then gets "" (each worker must make this call, the chief included)."""
    if role.count == 1:
        return run_id or ""
    code = np.zeros(32, np.float32)  # hex digit + 1 per position; 0 = no run
    if role.chief and run_id:
        code = np.array([int(c, 16) + 1 for c in run_id], np.float32)
    first = [True]

    def local(context: tf.distribute.experimental.ValueContext) -> tf.Tensor:
        mine, first[0] = first[0], False  # one replica per worker contributes
        return tf.constant(code if mine else np.zeros(32, np.float32))

    values = strategy.experimental_distribute_values_from_function(local)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()
    if not total.any():
        return ""
    return "".join(f"{int(round(v)) - 1:x}" for v in total)


def _check_tf_config() -> None:
    """A malformed TF_CONFIG is a user error: say so in one line, not a traceback."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return  # no cluster: MultiWorkerMirroredStrategy runs as a single local worker
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({err.msg}): see docs/tracking.md, "
            "'Several workers, one run'"
        ) from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ConfigError(
            'TF_CONFIG must be a JSON object with "cluster" and "task", e.g. '
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
