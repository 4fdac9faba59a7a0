"""The ``method`` config group's schemas: one frozen dataclass per training method.

``method=<name>`` picks the method (conf/method/<name>.yaml selects its schema); each
schema declares that method's keys, their types and defaults, once. Every method trains
the same classifier network (``model.*``, the GAN's discriminator), so a comparison of
methods measures the method, not the network (docs/methods.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodConfig:
    """``method.*`` common to every method: its name (the group option)."""

    name: str = "ssgan"


@dataclass(frozen=True)
class SupervisedMethod(MethodConfig):
    """The baseline: cross-entropy on the labelled images only."""

    name: str = "supervised"


@dataclass(frozen=True)
class FeatureMatchingMethod(MethodConfig):
    """SSGAN with feature matching (Salimans et al. 2016, section 3.1 and 5)."""

    name: str = "ssgan"
    feature_matching: str = "squared_l2"  # squared_l2 (paper) | l1 (reference code)
    unsupervised_weight: float = 1.0  # weight of D's real/fake loss on unlabelled images


@dataclass(frozen=True)
class BadGANMethod(FeatureMatchingMethod):
    """Bad GAN (Dai et al. 2017): SSGAN plus D's conditional entropy on unlabelled images
    and G's pull-away term; the weights are the paper's SVHN setting (ssl_bad_gan's
    ``svhn_config``: ent_weight 0.1, pt_weight 0.8). The paper's PixelCNN++ density term
    is left out (a pretrained density model; docs/methods.md)."""

    name: str = "badgan"
    entropy_weight: float = 0.1
    pull_away_weight: float = 0.8


@dataclass(frozen=True)
class MeanTeacherMethod(MethodConfig):
    """Mean Teacher (Tarvainen & Valpola 2017): a student trained on labels plus
    consistency with an EMA teacher on differently perturbed inputs; the teacher is
    evaluated and exported. Defaults: the paper's SVHN setting (teacher decay 0.99 during
    ramp-up and 0.999 after, translations of 2 pixels, Gaussian input noise 0.15), the
    ramp-up as a share of the run's steps. The weight 100 is the paper's ratio of the two
    terms: its labelled-subset SVHN runs weight the MSE by 1 against a cross-entropy
    averaged over the whole 100-image batch, one image of which is labelled; here the
    cross-entropy is averaged over the labelled batch, so the same ratio is 100 (and Adam's
    steps do not change with the loss's overall scale)."""

    name: str = "mean_teacher"
    consistency_weight: float = 100.0  # the largest weight, reached after the ramp-up
    rampup: float = 0.25  # share of the run's steps over which the weight ramps up
    teacher_decay: float = 0.99  # during the ramp-up
    teacher_decay_after: float = 0.999  # after it
    translate: int = 2  # largest random shift, pixels
    input_noise: float = 0.15  # standard deviation of Gaussian noise, model range [-1, 1]


@dataclass(frozen=True)
class FixMatchMethod(MethodConfig):
    """FixMatch (Sohn et al. 2020): a pseudo-label from a weakly augmented unlabelled image,
    kept when its confidence reaches ``threshold``, is the target for a strongly augmented
    copy (RandAugment + Cutout). Defaults: the paper's (tau 0.95, mu 7, lambda_u 1; SVHN's
    weak augmentation shifts by up to 12.5 % and never flips)."""

    name: str = "fixmatch"
    threshold: float = 0.95
    unlabelled_ratio: int = 7  # mu: unlabelled images per labelled image in a step
    unlabelled_weight: float = 1.0  # lambda_u
    translate: int = 4  # weak augmentation: largest random shift, pixels (12.5 % of 32)
    strong_ops: int = 2  # RandAugment: operations applied to each image
    cutout: float = 0.5  # Cutout square side as a share of the image side (0 = none)


# The group's options: name -> schema. A new method adds its schema here, its step in
# ssgan/methods/ and conf/method/<name>.yaml (docs/methods.md, "Adding a method").
METHOD_SCHEMAS: dict[str, type[MethodConfig]] = {
    "supervised": SupervisedMethod,
    "ssgan": FeatureMatchingMethod,
    "badgan": BadGANMethod,
    "mean_teacher": MeanTeacherMethod,
    "fixmatch": FixMatchMethod,
}

# Methods that train a generator (sample grids, the generator's own optimizer).
GAN_METHODS = ("ssgan", "badgan")


def unlabelled_ratio(method: MethodConfig) -> int:
    """Unlabelled images per labelled image in one step (the input pipeline's ratio)."""
    return int(getattr(method, "unlabelled_ratio", 1))


def evaluates_an_average(method: MethodConfig, ema_decay: float) -> bool:
    """The run evaluates and exports averaged weights (``train.ema_decay``, or Mean
    Teacher's teacher): a checkpoint keeps them as ``ema_discriminator``."""
    return ema_decay > 0 or method.name == "mean_teacher"


def trains_on_labels_only(method: MethodConfig) -> bool:
    """The baseline reads only the labelled pool: its epoch and statistics use that pool."""
    return method.name == "supervised"
