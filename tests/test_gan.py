"""The training step: learning, the supervised baseline, EMA, strategies, precision."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from ssgan.gan import SemiSupervisedGAN
from tests.test_model import model_cfg, train_cfg


def _batch(seed: int = 0, size: int = 16):
    rng = np.random.default_rng(seed)
    labelled = tf.constant(rng.uniform(-1, 1, (size, 32, 32, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 10, size))
    unlabelled = tf.constant(rng.uniform(-1, 1, (size, 32, 32, 3)).astype(np.float32))
    return labelled, labels, unlabelled


def test_steps_reduce_the_supervised_loss_on_a_fixed_batch() -> None:
    tf.keras.utils.set_random_seed(0)
    gan = SemiSupervisedGAN(model_cfg(drop_rate=0.0), train_cfg(lr=3e-3))
    batch = _batch()
    first = float(gan.train_step(batch)["d_supervised_loss"])
    for _ in range(30):
        last = gan.train_step(batch)
    assert float(last["d_supervised_loss"]) < 0.5 * first
    assert all(np.isfinite(float(v)) for v in last.values())
    assert float(last["g_loss"]) > 0.0 and float(last["d_unsupervised_loss"]) > 0.0


def test_supervised_mode_leaves_the_generator_untouched() -> None:
    gan = SemiSupervisedGAN(model_cfg(), train_cfg(mode="supervised"))
    before = [w.copy() for w in gan.generator.get_weights()]
    d_before = [w.copy() for w in gan.discriminator.get_weights()]
    out = gan.train_step(_batch())
    assert float(out["g_loss"]) == 0.0 and float(out["d_unsupervised_loss"]) == 0.0
    for a, b in zip(before, gan.generator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, gan.discriminator.get_weights(),
                                                         strict=True))  # fmt: skip


def test_ema_classifier_averages_the_discriminator() -> None:
    plain = SemiSupervisedGAN(model_cfg(), train_cfg())
    assert plain.classifier() is plain.discriminator
    assert "ema_discriminator" not in plain.checkpoint_objects()
    gan = SemiSupervisedGAN(model_cfg(), train_cfg(ema_decay=0.9))
    start = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    for _ in range(3):
        gan.train_step(_batch())
    ema = gan.classifier()
    assert ema is not gan.discriminator and "ema_discriminator" in gan.checkpoint_objects()
    for s, live, avg in zip(start, gan.discriminator.trainable_weights, ema.trainable_weights,
                            strict=True):  # fmt: skip
        s, live, avg = np.asarray(s), live.numpy(), avg.numpy()
        # The average lags behind: it lies between the start and the live weights.
        if not np.allclose(live, s):
            assert np.abs(avg - s).sum() < np.abs(live - s).sum()


def test_bf16_step_runs() -> None:
    from ssgan.distribute import set_precision

    set_precision("bf16")
    try:
        gan = SemiSupervisedGAN(model_cfg(), train_cfg())
        out = gan.train_step(_batch())
        assert all(np.isfinite(float(v)) for v in out.values())
        logits, _ = gan.discriminator(_batch()[0], training=False)
        assert logits.dtype == tf.float32  # logits and losses stay in float32
    finally:
        set_precision("fp32")


MIRRORED = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from ssgan.gan import SemiSupervisedGAN
    from tests.test_gan import _batch
    from tests.test_model import model_cfg, train_cfg
    from ssgan.distribute import make_strategy
    batch = _batch(size=16)
    results = {}
    for name in ("default", "mirrored"):
        tf.keras.utils.set_random_seed(0)
        cfg = train_cfg(strategy=name, precision="fp32", drop_rate=0.0)
        strategy = make_strategy(cfg)
        gan = SemiSupervisedGAN(model_cfg(drop_rate=0.0), cfg, strategy)
        data = tf.data.Dataset.from_tensors(batch)
        if strategy.num_replicas_in_sync > 1:
            data = strategy.experimental_distribute_dataset(data)
        out = gan.train_step(next(iter(data)))
        results[name] = (strategy.num_replicas_in_sync, float(out["d_supervised_loss"]))
    print(results)
    assert results["mirrored"][0] == 2
    assert abs(results["mirrored"][1] - results["default"][1]) < 1e-3
    """
)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_matches_one_device() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import ssgan\n" + MIRRORED],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def test_generated_images_leave_batch_norm_statistics_alone() -> None:
    """Inference normalises with statistics of real images only."""
    gan = SemiSupervisedGAN(model_cfg(), train_cfg())
    fake = gan.generator(tf.random.uniform([8, 8]), training=False)
    before = [v.numpy().copy() for v in gan._moving_statistics]
    assert before, "the tutorial discriminator has batch norm"
    gan._discriminate_generated(fake)
    for a, v in zip(before, gan._moving_statistics, strict=True):
        np.testing.assert_array_equal(a, v.numpy())
    gan.discriminator(fake, training=True)  # a plain training call does move them
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, gan._moving_statistics,
                                                                strict=True))  # fmt: skip
