"""Data sets for semi-supervised training: SVHN or the offline synthetic digits.

:func:`load_data` returns everything a run needs, already split: a class-balanced
labelled subset, the unlabelled pool, a validation split held out from the training set,
and the test set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ssgan.config import DataConfig, RenderConfig
from ssgan.data.split import balanced_label_budget, validation_split
from ssgan.errors import DataError


@dataclass(frozen=True)
class SemiSupervisedData:
    """Images are uint8 (N, 32, 32, 3); labels int64 digits 0-9."""

    labelled_x: np.ndarray
    labelled_y: np.ndarray
    unlabelled_x: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    labelled_indices: np.ndarray  # into the training file, so a run can be reproduced
    fingerprint: str  # the source data and every choice made from it
    # The file each split was read from: {"train": ..., "test": ...} (validation is
    # held out of train).
    files: dict[str, str] = field(default_factory=dict)


def raw_splits(cfg: DataConfig) -> tuple[dict[str, np.ndarray], str, dict[str, str]]:
    # Imported here so `python -m ssgan.data.synthetic` does not find itself pre-imported.
    from ssgan.data import svhn, synthetic

    root = Path(cfg.root).expanduser()
    if cfg.name == "synthetic":
        arrays, key = synthetic.load_synthetic(
            root,
            seed=cfg.synthetic_seed,
            train_size=cfg.train_size,
            test_size=cfg.test_size,
            workers=cfg.num_workers,
            settings=cfg.render or RenderConfig(),
        )
        cache = str(synthetic.cache_file(root, key))
        source = f"synthetic-v{synthetic.GENERATOR_VERSION}-{key}"  # the version, readable
        return arrays, source, {"train": cache, "test": cache}
    if cfg.name == "svhn":
        splits = ["train", "test"] + (["extra"] if cfg.use_extra else [])
        loaded = svhn.load_splits(root, splits, verify=cfg.verify, download=cfg.download)
        arrays = {}
        for split in splits:
            arrays[f"{split}_x"], arrays[f"{split}_y"] = loaded[split]
        arrays.pop("extra_y", None)  # extra images only join the unlabelled pool
        files = {split: str(root / svhn.FILES[split][0]) for split in ("train", "test")}
        return arrays, "svhn" + ("+extra" if cfg.use_extra else ""), files
    raise DataError(f"data.name={cfg.name} is not a data set: allowed svhn, synthetic")


def load_data(data_cfg: DataConfig, num_classes: int = 10) -> SemiSupervisedData:
    """Load (downloading or generating if needed), split and budget one data set."""
    arrays, source, files = raw_splits(data_cfg)
    train_x, train_y = arrays["train_x"], arrays["train_y"]
    if data_cfg.val_size >= len(train_x):
        raise DataError(
            f"data.val_size={data_cfg.val_size} leaves no training images: the training set "
            f"holds {len(train_x)}"
        )
    seed = data_cfg.seed
    pool, val = validation_split(len(train_x), data_cfg.val_size, seed)
    labelled = balanced_label_budget(train_y, pool, data_cfg.num_labeled, num_classes, seed)
    unlabelled_x = train_x[pool]
    if "extra_x" in arrays:
        unlabelled_x = np.concatenate([unlabelled_x, arrays["extra_x"]])
    # The pixels and labels themselves, not just file names or generator settings: another
    # Pillow/FreeType build could render the same synthetic parameters differently.
    digest = hashlib.sha256(source.encode())
    for name in sorted(arrays):
        digest.update(f"|{name}{arrays[name].shape}".encode())
        digest.update(np.ascontiguousarray(arrays[name]).data)
    digest.update(val.tobytes())
    digest.update(labelled.tobytes())
    return SemiSupervisedData(
        labelled_x=train_x[labelled],
        labelled_y=train_y[labelled],
        unlabelled_x=unlabelled_x,
        val_x=train_x[val],
        val_y=train_y[val],
        test_x=arrays["test_x"],
        test_y=arrays["test_y"],
        labelled_indices=labelled,
        fingerprint=f"{source}:{digest.hexdigest()[:16]}",
        files=files,
    )
