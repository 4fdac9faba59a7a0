"""The training step: learning, the supervised baseline, EMA, precision, strategies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from ssgan.errors import ConfigError
from ssgan.training.distribute import make_strategy, set_precision, worker_role
from tests.helpers.networks import build, gan_batch, gan_stream, model_cfg, train_cfg


def _finite(out: dict) -> bool:
    return all(np.isfinite(float(v)) for v in out.values())


@pytest.mark.integration
def test_steps_reduce_the_supervised_loss_on_a_fixed_batch() -> None:
    tf.keras.utils.set_random_seed(0)
    gan = build(model_cfg(drop_rate=0.0), train_cfg(lr=3e-3))
    batch = gan_batch()
    first = float(gan.train_step(batch)["d_supervised_loss"])
    for _ in range(30):
        last = gan.train_step(batch)
    assert float(last["d_supervised_loss"]) < 0.5 * first
    assert _finite(last) and set(last) == {
        "d_loss", "g_loss", "d_supervised_loss", "d_unsupervised_loss"
    }  # fmt: skip
    assert float(last["g_loss"]) > 0.0 and float(last["d_unsupervised_loss"]) > 0.0


@pytest.mark.integration
def test_the_supervised_baseline_trains_only_the_classifier() -> None:
    gan = build(model_cfg(), train_cfg(), "supervised")
    assert not hasattr(gan, "generator")
    d_before = [w.copy() for w in gan.discriminator.get_weights()]
    rng_before = gan.rng.state.numpy().copy()
    out = gan.train_step(gan_batch())
    assert set(out) == {"d_loss", "d_supervised_loss"}
    assert float(out["d_loss"]) == float(out["d_supervised_loss"]) > 0.0
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, gan.discriminator.get_weights(),
                                                         strict=True))  # fmt: skip
    np.testing.assert_array_equal(rng_before, gan.rng.state.numpy())  # no z drawn


@pytest.mark.integration
def test_initialize_is_data_dependent_for_improved_gan_only() -> None:
    images = gan_batch(size=32)[2]
    tutorial = build(model_cfg(), train_cfg())
    before = [w.copy() for w in tutorial.discriminator.get_weights()]
    tutorial.initialize(images)
    for a, b in zip(before, tutorial.discriminator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    gan = build(model_cfg("improved_gan"), train_cfg(ema_decay=0.5))
    rng_before = gan.rng.state.numpy().copy()
    gan.initialize(images)
    logits, _ = gan.discriminator(images, training=True)
    # The output layer is initialised to logits of standard deviation 0.1 (reference).
    assert 0.02 < float(tf.math.reduce_std(logits)) < 0.3
    assert not np.allclose(gan.generator.get_layer("deconv3").g.numpy(), 1.0)
    np.testing.assert_array_equal(rng_before, gan.rng.state.numpy())
    pairs = zip(gan.ema_discriminator.get_weights(), gan.discriminator.get_weights(), strict=True)
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
    assert _finite(gan.train_step(gan_batch()))


@pytest.mark.integration
def test_set_learning_rate_reaches_both_optimizers() -> None:
    gan = build(model_cfg(), train_cfg())
    gan.set_learning_rate(1e-5)
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(1e-5)
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_step_runs(precision: str) -> None:
    set_precision(precision)
    try:
        gan = build(model_cfg(), train_cfg(precision=precision))
        out = gan.train_step(gan_batch())
        assert _finite(out)
        expected = {"bf16": "bfloat16", "fp16": "float16"}[precision]
        assert gan.discriminator.get_layer("conv2").compute_dtype == expected
        logits, features = gan.discriminator(gan_batch()[0], training=False)
        assert logits.dtype == features.dtype == tf.float32  # logits and losses in float32
        # float16 needs loss scaling; bfloat16 has float32's range and does not.
        scaled = isinstance(gan.d_optimizer, tf.keras.optimizers.LossScaleOptimizer)
        assert scaled == (precision == "fp16")
        gan.set_learning_rate(1e-4)
        assert float(gan.d_optimizer.learning_rate) == pytest.approx(1e-4)
    finally:
        set_precision("fp32")


@pytest.mark.integration
def test_jit_compiled_step_runs() -> None:
    gan = build(model_cfg(), train_cfg(jit_compile=True))
    assert _finite(gan.train_step(gan_batch()))


@pytest.mark.integration
def test_generated_images_leave_batch_norm_statistics_alone() -> None:
    """Inference normalises with statistics of real images only."""
    gan = build(model_cfg(), train_cfg())
    fake = gan.generator(tf.random.uniform([8, 8]), training=False)
    before = [v.numpy().copy() for v in gan._moving_statistics]
    assert before, "the tutorial discriminator has batch norm"
    gan._discriminate_generated(fake)
    for a, v in zip(before, gan._moving_statistics, strict=True):
        np.testing.assert_array_equal(a, v.numpy())
    gan.discriminator(fake, training=True)  # a plain training call does move them
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(before, gan._moving_statistics,
                                                                strict=True))  # fmt: skip


@pytest.mark.integration
def test_strategy_and_precision_errors_are_one_line(monkeypatch) -> None:
    assert worker_role(train_cfg()).chief  # one process: it is the chief
    with pytest.raises(ConfigError, match=r"train.precision=fp8 .*allowed fp32, bf16, fp16"):
        set_precision("fp8")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        make_strategy(train_cfg(strategy="multi_worker"))
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ConfigError, match='TF_CONFIG must be a JSON object with "cluster"'):
        make_strategy(train_cfg(strategy="multi_worker"))


# What a command does first (ssgan.runtime): quiet TensorFlow, the allocator set.
START_TF = "from ssgan.runtime import start_tensorflow\nstart_tensorflow()\n"
MIRRORED = textwrap.dedent(
    """
    import pytest
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from ssgan.training.distribute import make_strategy
    from ssgan.errors import ConfigError
    from ssgan.models.networks import build_discriminator
    from ssgan.models import losses
    from ssgan.methods.base import ClassifierMethod
    from tests.helpers.networks import build, gan_batch, model_cfg, train_cfg
    batch = gan_batch(size=16)
    mirrored = make_strategy(train_cfg(strategy="mirrored"))
    assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync

    # 1. Per-replica loss scaling: the replicas' summed gradients equal the gradient of
    # the global-batch mean (a batch-norm-free D in inference mode, so exactly).
    with mirrored.scope():
        d = build_discriminator(model_cfg("improved_gan"))
        plain_adam = tf.keras.optimizers.Adam()
    def grads(images, labels):
        with tf.GradientTape() as tape:
            logits, _ = d(images, training=False)
            loss = losses.supervised_loss(logits=logits, labels=labels)
            target = ClassifierMethod._gradient_target(loss, plain_adam)
        return tape.gradient(target, d.trainable_variables)
    data = mirrored.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch[:2]))
    split = tf.function(lambda b: mirrored.run(grads, args=b))(next(iter(data)))
    summed = [mirrored.reduce("SUM", g, axis=None) for g in split]
    whole = grads(*batch[:2])
    for a, b in zip(summed, whole, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)

    # 2. Whole steps, both modes, with EMA: run, finite, and (first step, before any
    # update) the same supervised loss as one device up to per-replica batch norm.
    results = {}
    for mode in ("supervised", "ssgan"):
        for name in ("default", "mirrored"):
            tf.keras.utils.set_random_seed(0)
            cfg = train_cfg(strategy=name, ema_decay=0.9)
            strategy = make_strategy(cfg)
            gan = build(model_cfg(drop_rate=0.0), cfg, mode, strategy)
            stream = tf.data.Dataset.from_tensors(batch).repeat()
            if strategy.num_replicas_in_sync > 1:
                stream = strategy.experimental_distribute_dataset(stream)
            steps = iter(stream)
            outs = [gan.train_step(next(steps)) for _ in range(2)]
            assert all(np.isfinite(float(v)) for out in outs for v in out.values())
            results[mode, name] = float(outs[0]["d_supervised_loss"])
        # Per-replica batch norm normalises each half-batch by its own statistics: the
        # losses agree to about 0.1 %, not exactly (2b checks a batch-norm-free D exactly).
        assert results[mode, "mirrored"] == pytest.approx(results[mode, "default"], rel=2e-3)

    # 2b. Whole steps, exactly: with a batch-norm-free D and no dropout (its input dropout
    # too, switched off here: masks are drawn per replica), three supervised
    # steps mirrored over two replicas give the same losses at every step, and the same
    # weights and optimizer moments after them, as on one device. This covers the whole
    # step's gradient (scaling, all-reduce, clipping, Adam), not only its first loss.
    initial, after = None, {}
    for name in ("default", "mirrored"):
        cfg = train_cfg(strategy=name)
        strategy = make_strategy(cfg)
        gan = build(model_cfg("improved_gan", drop_rate=0.0), cfg, "supervised", strategy)
        if initial is None:
            initial = [w.copy() for w in gan.discriminator.get_weights()]
        gan.discriminator.set_weights(initial)
        for layer in gan.discriminator.layers:
            if isinstance(layer, tf.keras.layers.Dropout):
                layer.rate = 0.0
        stream = tf.data.Dataset.from_tensors(batch).repeat()
        if strategy.num_replicas_in_sync > 1:
            stream = strategy.experimental_distribute_dataset(stream)
        steps = iter(stream)
        losses_seen = [float(gan.train_step(next(steps))["d_supervised_loss"]) for _ in range(3)]
        after[name] = (losses_seen, gan.discriminator.get_weights(),
                       [v.numpy() for v in gan.d_optimizer.variables])
    one, two = after["default"], after["mirrored"]
    np.testing.assert_allclose(two[0], one[0], rtol=1e-4)
    assert not all(np.array_equal(a, b) for a, b in zip(one[1], initial, strict=True))
    for a, b in zip(two[1] + two[2], one[1] + one[2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)

    # 3. XLA is for one replica: asking for it with two is a one-line config error.
    try:
        build(model_cfg(), train_cfg(strategy="mirrored", jit_compile=True), "ssgan",
              mirrored)
        raise AssertionError("expected ConfigError")
    except ConfigError as err:
        assert "train.jit_compile=true works with one replica only" in str(err)
    print("ok", results)
    """
)


@pytest.mark.e2e
@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus() -> None:
    result = subprocess.run(
        [sys.executable, "-c", START_TF + MIRRORED],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


@pytest.mark.integration
def test_loop_stops_at_the_first_nonfinite_step_without_counting_it() -> None:
    gan = build(model_cfg(), train_cfg())
    step = tf.Variable(0, dtype=tf.int64)
    batches = iter(gan_stream(nan_at=2))  # the third step's batch
    losses, finite_steps = gan.train_steps(batches, 5, step)
    assert int(finite_steps) == 2 and int(step.numpy()) == 2
    assert not np.isfinite(float(losses["d_loss"]))
    assert gan.d_optimizer.iterations.numpy() == 3  # the loop did not go on after it
    losses, finite_steps = build(model_cfg(), train_cfg()).train_steps(
        iter(gan_stream()), 3, tf.Variable(0, dtype=tf.int64)
    )
    assert int(finite_steps) == 3 and _finite(losses)


LOOP_EQUALS_STEPS = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    from tests.helpers.networks import build, gan_stream, model_cfg, train_cfg

    def fresh(mode):
        tf.keras.utils.set_random_seed(0)
        return build(model_cfg(), train_cfg(ema_decay=0.9), mode)

    def state(gan):
        models = [gan.discriminator, gan.ema_discriminator] + gan.networks()
        return [w.numpy() for m in models for w in m.weights] + [gan.rng.state.numpy()]

    for mode in ("ssgan", "supervised"):
        single, batches = fresh(mode), iter(gan_stream())
        outs = [single.train_step(next(batches)) for _ in range(5)]
        looped, batches = fresh(mode), iter(gan_stream())
        step = tf.Variable(0, dtype=tf.int64)
        first, n_first = looped.train_steps(batches, 3, step)
        second, n_second = looped.train_steps(batches, 2, step)
        assert (int(n_first), int(n_second), int(step.numpy())) == (3, 2, 5)
        for a, b in zip(state(single), state(looped), strict=True):
            np.testing.assert_array_equal(a, b)
        for key, value in second.items():  # the mean over the call's steps
            mean = np.mean(np.array([o[key].numpy() for o in outs[3:]], np.float32))
            np.testing.assert_allclose(value.numpy(), mean, rtol=1e-6)
        # Calls of any length share one trace.
        assert looped._loop.experimental_get_tracing_count() == 1
    print("ok")
    """
)


@pytest.mark.e2e
@pytest.mark.slow
def test_steps_in_one_call_equal_single_steps_bit_for_bit() -> None:
    """train.steps_per_loop changes nothing but speed: k steps in one compiled call give
    the weights, EMA, noise RNG state of k single steps, bit for bit (op determinism)."""
    result = subprocess.run(
        [sys.executable, "-c", START_TF + LOOP_EQUALS_STEPS],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


@pytest.mark.integration
def test_sample_grids_draw_z_as_training_does(monkeypatch, tmp_path) -> None:
    """Grids used to draw z ~ N(0, 1) while training draws U(-1, 1): one function now."""
    from ssgan.cli import compose_config
    from ssgan.methods import gan as gan_module
    from ssgan.training.distribute import make_strategy
    from ssgan.training.loop_options import LoopOptions
    from ssgan.training.trainer import Trainer
    from tests.helpers.configs import tiny_overrides, typed_config

    draws = []
    real = gan_module.latent_noise
    monkeypatch.setattr(gan_module, "latent_noise", lambda *args: draws.append(args) or real(*args))
    cfg = typed_config(compose_config("config", tiny_overrides(tmp_path)))
    gan = build(cfg.model, cfg.train)
    gan.train_step(gan_batch(size=8))
    assert len(draws) == 2 and draws[0][0] is gan.rng  # D step and G step
    rng_state = gan.rng.state.numpy().copy()
    options = LoopOptions.from_config(cfg.train, cfg.data, cfg.method)
    trainer = Trainer(options, None, gan, None, tmp_path, make_strategy(cfg.train))
    assert len(draws) == 3  # the grid's noise came through the same function
    np.testing.assert_array_equal(rng_state, gan.rng.state.numpy())  # training stream untouched
    grid = trainer.sample_z.numpy()
    assert grid.shape == (64, cfg.model.z_size)
    assert grid.min() >= -1.0 and grid.max() <= 1.0
    assert abs(grid.mean()) < 0.05 and abs(grid.var() - 1 / 3) < 0.05  # U(-1, 1): var 1/3
    np.testing.assert_array_equal(grid, gan.fixed_noise(64).numpy())  # fixed across epochs


@pytest.mark.integration
def test_initialisation_sees_train_init_batch_size_images(tmp_path) -> None:
    """The reference initialises D on 500 images with batches of 100: the first
    train.init_batch_size unlabelled images of the stream, across batches."""
    from ssgan.cli import compose_config
    from ssgan.data.pipeline import train_batches
    from ssgan.training.loop_options import LoopOptions
    from ssgan.training.trainer import initialisation_images
    from tests.helpers.configs import tiny_overrides, typed_config
    from tests.helpers.datasets import prototype_digits

    data = prototype_digits()
    cfg = typed_config(
        compose_config("config", tiny_overrides(tmp_path) + ["train.init_batch_size=50"])
    )
    options = LoopOptions.from_config(cfg.train, cfg.data, cfg.method)
    first_two = [u.numpy() for _, _, u in train_batches(data, 32, 0).take(2)]
    images = initialisation_images(options, data).numpy()
    np.testing.assert_array_equal(images, np.concatenate(first_two)[:50])
    one_batch = replace(options, init_batch_size=0)  # one training batch, as before the key
    np.testing.assert_array_equal(initialisation_images(one_batch, data).numpy(), first_two[0])
    gan = build(model_cfg("improved_gan"), train_cfg())
    gan.initialize(images, noise_count=32)  # D on 50 images, G on a batch of 32 z
    assert _finite(gan.train_step(gan_batch()))
