"""Every training method (ssgan/methods/) on tiny networks: its step returns its metrics and
trains the classifier, its state round-trips through a checkpoint, and what sets it apart
(Mean Teacher's teacher, Bad GAN's terms, the baseline's blindness to unlabelled images,
FixMatch's pseudo-labels, the FLOPs a step costs); and ``method=<name>`` composes."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ssgan.cli import compose_config
from ssgan.config import TrainAppConfig, typed
from ssgan.config_checks import validate_train_config
from ssgan.errors import ConfigError
from ssgan.method_config import (
    METHOD_SCHEMAS,
    FixMatchMethod,
    MeanTeacherMethod,
    MethodConfig,
)
from ssgan.methods import METHODS, build_method
from ssgan.methods.base import ClassifierMethod
from tests.helpers.networks import gan_batch, model_cfg, train_cfg

BATCH = 4  # labelled images per step
RATIO = 2  # FixMatch's unlabelled images per labelled one here (mu)
STEPS = 3
TOTAL_STEPS = 10  # Mean Teacher's ramp-up: 0.25 x 10 = 2.5 steps
CONF_METHODS = Path(__file__).resolve().parents[1] / "conf" / "method"


def _schema(name: str) -> MethodConfig:
    if name == "fixmatch":
        return FixMatchMethod(unlabelled_ratio=RATIO)
    return METHOD_SCHEMAS[name]()


def _build(name: str, seed: int = 0, method: MethodConfig | None = None) -> ClassifierMethod:
    tf.keras.utils.set_random_seed(seed)  # the same initial weights for the same seed
    return build_method(
        model_cfg(), train_cfg(seed=seed), method or _schema(name), total_steps=TOTAL_STEPS
    )


def _batch(name: str, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    labelled, labels, unlabelled = gan_batch(seed, size=BATCH)
    if name == "fixmatch":
        unlabelled = gan_batch(seed + 100, size=BATCH * RATIO)[2]
    return labelled, labels, unlabelled


def _weights(variables: list) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in variables]


def _distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b, strict=True)))


@dataclass
class Trained:
    """A method after STEPS steps on one batch: its outputs, and the trainable weights of
    the network it trains (``student``) and of the one it evaluates (``classifier``) before
    the first step and after each."""

    method: ClassifierMethod
    outputs: list[dict[str, float]] = field(default_factory=list)
    student: list[list[np.ndarray]] = field(default_factory=list)
    classifier: list[list[np.ndarray]] = field(default_factory=list)


@functools.cache
def _trained(name: str) -> Trained:
    method = _build(name)
    run = Trained(method)
    batch = _batch(name)
    for step in range(STEPS + 1):
        run.student.append(_weights(method.discriminator.trainable_weights))
        run.classifier.append(_weights(method.classifier().trainable_weights))
        if step < STEPS:
            out = method.train_step(batch)
            run.outputs.append({key: float(value) for key, value in out.items()})
    return run


# -- every method -------------------------------------------------------------------------


@pytest.mark.unit
def test_every_method_has_a_schema_an_option_file_and_a_class() -> None:
    options = {path.stem for path in CONF_METHODS.glob("*.yaml")}
    assert set(METHODS) == set(METHOD_SCHEMAS) == options
    for name, schema in METHOD_SCHEMAS.items():
        assert schema().name == name
        assert {"d_loss", "d_supervised_loss"} <= set(METHODS[name].metric_keys)


@pytest.mark.integration
@pytest.mark.parametrize("name", list(METHODS))
def test_steps_return_the_metric_keys_finite_and_train_the_classifier(name: str) -> None:
    run = _trained(name)
    for out in run.outputs:
        assert set(out) == set(run.method.metric_keys)
        assert all(math.isfinite(value) for value in out.values()), out
        assert out["d_supervised_loss"] > 0.0
    moved = _distance(run.student[0], run.student[-1])
    assert moved > 0.0
    assert _distance(run.classifier[0], run.classifier[-1]) > 0.0


@pytest.mark.integration
@pytest.mark.parametrize("name", list(METHODS))
def test_checkpoint_objects_round_trip(name: str, tmp_path: Path) -> None:
    trained = _trained(name).method
    path = tf.train.Checkpoint(**trained.checkpoint_objects()).save(str(tmp_path / "ckpt"))
    fresh = _build(name, seed=5)  # other initial weights and another random stream
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(
            fresh.discriminator.get_weights(), trained.discriminator.get_weights(), strict=True
        )
    )
    status = tf.train.Checkpoint(**fresh.checkpoint_objects()).restore(path)
    status.assert_existing_objects_matched()
    for mine, theirs in zip(fresh.networks(), trained.networks(), strict=True):
        for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(
        fresh.classifier().get_weights(), trained.classifier().get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    for mine, theirs in zip(fresh.optimizers(), trained.optimizers(), strict=True):
        assert int(mine.iterations) == int(theirs.iterations) == STEPS
        for a, b in zip(mine.variables, theirs.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(fresh.rng.state.numpy(), trained.rng.state.numpy())
    # Counters (Mean Teacher's updates) and the dropout layers' random states.
    mine, theirs = fresh.checkpoint_objects(), trained.checkpoint_objects()
    assert set(mine) == set(theirs)
    for key, value in theirs.items():
        if isinstance(value, tf.Variable):
            np.testing.assert_array_equal(mine[key].numpy(), value.numpy())
    for a, b in zip(
        mine["layer_rng_states"].states, theirs["layer_rng_states"].states, strict=True
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.integration
def test_step_flops_order_the_methods() -> None:
    # Per labelled image, in classifier forward passes F: supervised 3F (forward and
    # backward on B); Mean Teacher (1 + 3) F on 2B = 8F; FixMatch with mu = 7,
    # 3F on B (1 + 2 x 7) = 45F. The GANs add a generator and three D batches.
    built = {
        "supervised": _build("supervised"),
        "mean_teacher": _build("mean_teacher"),
        "fixmatch": _build("fixmatch", method=FixMatchMethod(unlabelled_ratio=7)),
        "ssgan": _build("ssgan"),
    }
    flops = {name: method.step_flops(8) for name, method in built.items()}
    assert 0 < flops["supervised"] < flops["mean_teacher"] < flops["fixmatch"]
    assert flops["mean_teacher"] / flops["supervised"] == pytest.approx(8 / 3)
    assert flops["fixmatch"] / flops["supervised"] == pytest.approx(15.0)
    assert flops["ssgan"] > 3 * flops["supervised"]
    assert built["supervised"].step_flops(16) == pytest.approx(2 * flops["supervised"])


# -- what sets each method apart ----------------------------------------------------------


@pytest.mark.integration
def test_supervised_never_reads_the_unlabelled_images() -> None:
    method = _build("supervised")
    labelled, labels, unlabelled = _batch("supervised")
    poisoned = tf.fill(tf.shape(unlabelled), float("nan"))
    rng_before = method.rng.state.numpy().copy()
    for _ in range(2):
        out = method.train_step((labelled, labels, poisoned))
        assert set(out) == {"d_loss", "d_supervised_loss"}
        assert all(math.isfinite(float(v)) for v in out.values()), out
    assert all(np.all(np.isfinite(w)) for w in method.discriminator.get_weights())
    assert float(out["d_loss"]) == float(out["d_supervised_loss"])
    np.testing.assert_array_equal(method.rng.state.numpy(), rng_before)  # nothing drawn


@pytest.mark.integration
def test_mean_teacher_evaluates_its_teacher_an_average_of_the_student() -> None:
    run = _trained("mean_teacher")
    method = run.method
    assert method.classifier() is method.teacher is not method.discriminator
    assert method.checkpoint_objects()["ema_discriminator"] is method.teacher
    assert int(method.updates) == STEPS
    # Decay min(teacher_decay, 1 - 1/(t + 1)) at update t: 0 first (the teacher becomes
    # the student), then 1/2, then 2/3 (0.99 caps it later).
    for a, b in zip(run.classifier[0], run.student[0], strict=True):
        np.testing.assert_array_equal(a, b)  # starts as a copy
    for a, b in zip(run.classifier[1], run.student[1], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for step, decay in ((2, 0.5), (3, 2.0 / 3.0)):
        for teacher, before, student in zip(
            run.classifier[step], run.classifier[step - 1], run.student[step], strict=True
        ):
            np.testing.assert_allclose(
                teacher, decay * before + (1.0 - decay) * student, rtol=1e-5, atol=1e-6
            )
    # Towards the student, by less than the student itself moved.
    teacher_moved = _distance(run.classifier[3], run.classifier[2])
    student_moved = _distance(run.student[3], run.student[2])
    assert 0.0 < teacher_moved < student_moved
    assert _distance(run.classifier[3], run.student[3]) < _distance(
        run.classifier[2], run.student[3]
    )


@pytest.mark.integration
def test_mean_teacher_ramps_the_consistency_weight_up() -> None:
    # Ramp-up of 0.25 x 10 = 2.5 steps: w = 100 exp(-5 (1 - t / 2.5)^2) at updates t = 0, 1, 2.
    weights = [out["consistency_weight"] for out in _trained("mean_teacher").outputs]
    expected = [100.0 * math.exp(-5.0 * (1.0 - t / 2.5) ** 2) for t in range(STEPS)]
    assert weights == pytest.approx(expected, rel=1e-5)
    for out in _trained("mean_teacher").outputs:
        total = out["d_supervised_loss"] + out["consistency_weight"] * out["consistency_loss"]
        assert out["d_loss"] == pytest.approx(total, rel=1e-5)


@pytest.mark.integration
def test_badgan_adds_entropy_and_pull_away_to_the_ssgan_losses() -> None:
    ssgan, badgan = _trained("ssgan"), _trained("badgan")
    assert set(badgan.method.metric_keys) - set(ssgan.method.metric_keys) == {
        "d_entropy_loss",
        "g_pull_away_loss",
    }
    first_ssgan, first_bad = ssgan.outputs[0], badgan.outputs[0]
    # The same seed and batch: the same networks, noise and shared terms at the first step;
    # D's loss differs by exactly Bad GAN's weighted entropy (entropy_weight 0.1).
    for key in ("d_supervised_loss", "d_unsupervised_loss"):
        assert first_bad[key] == pytest.approx(first_ssgan[key], rel=1e-6)
    assert first_bad["d_loss"] != first_ssgan["d_loss"]
    assert first_bad["d_loss"] - first_ssgan["d_loss"] == pytest.approx(
        0.1 * first_bad["d_entropy_loss"], rel=1e-4
    )
    assert first_bad["d_entropy_loss"] > 0.0 and first_bad["g_pull_away_loss"] > 0.0
    # Entropy of 10 classes lies in (0, ln 10]; the pull-away term, a mean cos^2, in [0, 1].
    for out in badgan.outputs:
        assert 0.0 < out["d_entropy_loss"] <= math.log(10) + 1e-5
        assert 0.0 <= out["g_pull_away_loss"] <= 1.0 + 1e-6
        d_total = (
            out["d_supervised_loss"] + out["d_unsupervised_loss"] + 0.1 * out["d_entropy_loss"]
        )
        assert out["d_loss"] == pytest.approx(d_total, rel=1e-5)
        assert out["g_loss"] >= 0.8 * out["g_pull_away_loss"]
    for out in ssgan.outputs:
        assert out["d_loss"] == pytest.approx(
            out["d_supervised_loss"] + out["d_unsupervised_loss"], rel=1e-5
        )


@pytest.mark.integration
def test_fixmatch_learns_from_confident_pseudo_labels_only() -> None:
    # Default threshold 0.95: an untrained classifier is confident on few images.
    for out in _trained("fixmatch").outputs:
        assert 0.0 <= out["pseudo_label_share"] <= 1.0
        total = out["d_supervised_loss"] + out["unlabelled_loss"]
        assert out["d_loss"] == pytest.approx(total, rel=1e-5)
    # Threshold 0: every unlabelled image gets its pseudo-label and a positive loss.
    method = _build("fixmatch", method=replace(_schema("fixmatch"), threshold=0.0))
    out = method.train_step(_batch("fixmatch"))
    assert float(out["pseudo_label_share"]) == 1.0
    assert float(out["unlabelled_loss"]) > 0.0
    assert float(out["d_loss"]) == pytest.approx(
        float(out["d_supervised_loss"]) + float(out["unlabelled_loss"]), rel=1e-5
    )


# -- method=<name> on the command line ----------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("name", list(METHODS))
def test_augmented_gives_the_copies_a_step_trains_on(name: str) -> None:
    """What the training benchmark times as a method's augmentation: FixMatch's weak
    labelled, weak and strong unlabelled images; Mean Teacher's teacher and student
    copies of all of them; nothing for the others."""
    labelled, _, unlabelled = _batch(name)
    copies = _build(name).augmented(labelled, unlabelled)
    shapes = [tuple(copy.shape) for copy in copies]
    image = (32, 32, 3)
    expected = {
        "fixmatch": [(BATCH, *image), (BATCH * RATIO, *image), (BATCH * RATIO, *image)],
        "mean_teacher": [(2 * BATCH, *image)] * 2,
    }.get(name, [])
    assert shapes == expected and METHODS[name].augments == bool(expected)
    for copy in copies if name == "fixmatch" else []:  # Mean Teacher's noise is not clipped
        assert float(tf.reduce_min(copy)) >= -1.0 and float(tf.reduce_max(copy)) <= 1.0


@pytest.mark.unit
@pytest.mark.parametrize("name", list(METHOD_SCHEMAS))
def test_method_option_composes_into_its_schema(name: str) -> None:
    # What `python -m ssgan.train --cfg job method=<name>` composes and checks.
    cfg = compose_config("config", [f"method={name}"])
    validate_train_config(cfg)
    settings = typed(cfg, TrainAppConfig)
    assert type(settings.method) is METHOD_SCHEMAS[name]
    assert settings.method == METHOD_SCHEMAS[name]()  # the option file adds no values


@pytest.mark.unit
def test_a_methods_own_keys_are_overridable() -> None:
    cfg = compose_config(
        "config", ["method=fixmatch", "method.threshold=0.7", "method.unlabelled_ratio=3"]
    )
    validate_train_config(cfg)
    method = typed(cfg, TrainAppConfig).method
    assert isinstance(method, FixMatchMethod)
    assert (method.threshold, method.unlabelled_ratio) == (0.7, 3)
    teacher = typed(
        compose_config("config", ["method=mean_teacher", "method.rampup=0.5"]), TrainAppConfig
    ).method
    assert isinstance(teacher, MeanTeacherMethod) and teacher.rampup == 0.5


@pytest.mark.unit
@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["method=fixmatch", "method.feature_matching=l1"], "method.feature_matching"),
        (["method=supervised", "method.threshold=0.5"], "method.threshold"),
        (["method=mean_teacher", "method.entropy_weight=0.1"], "method.entropy_weight"),
    ],
)
def test_another_methods_key_is_refused(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose_config("config", overrides)


@pytest.mark.unit
def test_an_unknown_method_is_refused() -> None:
    with pytest.raises(ConfigError, match="method"):
        compose_config("config", ["method=vat"])
