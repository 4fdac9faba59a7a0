"""SVHN's published figures: the targets the synthetic digits are calibrated against.

Every figure here comes from outside this project's own data, with its source, so the
synthetic set's difficulty is set from published statistics and never from real SVHN
images (a real-data check stays an honest test of the stand-in). Figures that are
measurements rather than publications say so.
"""

from __future__ import annotations

from dataclasses import dataclass

# Images in SVHN's cropped-digit files (train_32x32.mat, test_32x32.mat, extra_32x32.mat);
# conf/data/svhn.yaml declares the train and test sizes for the config checks.
SPLIT_SIZES = {"train": 73_257, "test": 26_032, "extra": 531_131}

# Digits 0-9 in SVHN's cropped-digit files (train_32x32.mat, test_32x32.mat; label 10
# means 0). Netzer et al. 2011, "Reading Digits in Natural Images with Unsupervised
# Feature Learning"; the counts are those of the released files.
CLASS_COUNTS = {
    "train": (4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659),
    "test": (1744, 5099, 4149, 2882, 2523, 2384, 1977, 2019, 1660, 1595),
}


def class_frequencies(split: str) -> tuple[float, ...]:
    """Each digit's share of SVHN's ``split`` (train or test), summing to 1."""
    counts = CLASS_COUNTS[split]
    total = sum(counts)
    return tuple(count / total for count in counts)


@dataclass(frozen=True)
class Reference:
    """One SVHN figure and where it comes from."""

    value: float
    source: str


_CHANNELS_SOURCE = (
    "SVHN train split, pixels in [0, 1]; the normalisation constants widely used in "
    "training scripts (e.g. USB/TorchSSL's SVHN mean and std)"
)
_CROPS_SOURCE = (
    "measured on 64 real SVHN test crops, 32x32 (the project's issue 29); a measurement, "
    "not a published figure"
)

# Per-channel mean and standard deviation (R, G, B) of the train split's pixels in [0, 1].
CHANNEL_MEAN = tuple(Reference(v, _CHANNELS_SOURCE) for v in (0.4377, 0.4438, 0.4728))
CHANNEL_STD = tuple(Reference(v, _CHANNELS_SOURCE) for v in (0.198, 0.201, 0.197))
# Mean |Laplacian| of the grey image and mean (max - min channel), both in [0, 1] units.
SHARPNESS = Reference(0.037, _CROPS_SOURCE)
SATURATION = Reference(0.087, _CROPS_SOURCE)


def class_frequency_references(split: str) -> tuple[Reference, ...]:
    """:func:`class_frequencies` of ``split`` (train or test), each with its source."""
    source = (
        "Netzer et al. 2011, Reading Digits in Natural Images with Unsupervised Feature "
        f"Learning: the digit counts of the released {split}_32x32.mat"
    )
    return tuple(Reference(share, source) for share in class_frequencies(split))
