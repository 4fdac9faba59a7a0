"""SVHN cropped digits (Netzer et al. 2011): download, verify, parse.

The official files are MATLAB ``.mat`` files with ``X`` of shape (32, 32, 3, N) uint8
and ``y`` of shape (N, 1) holding 1..10, where 10 stands for the digit 0.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import scipy.io
from tqdm import tqdm

from ssgan.errors import DataError

BASE_URL = "http://ufldl.stanford.edu/housenumbers/"
# The published checksums of the cropped-digit files.
FILES = {
    "train": ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test": ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    "extra": ("extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"),
}
_CHUNK = 1 << 20


def md5sum(path: Path) -> str:
    """Hex MD5 of a file, read in chunks (the extra file is 1.3 GB)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, target: Path, expected_md5: str, hint: str) -> None:
    """Fetch ``url`` into a temporary file beside ``target``; rename only once verified."""
    partial = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=None)
            with bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        actual = md5sum(partial)
        if actual != expected_md5:
            raise DataError(
                f"downloaded {target.name} has MD5 {actual}, expected {expected_md5}: "
                "the download was corrupted, run again"
            )
        os.replace(partial, target)
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"cannot download {url} ({err}): {hint}") from err
    finally:
        partial.unlink(missing_ok=True)


def offline_hint(root: Path, splits: list[str], base_url: str = BASE_URL) -> str:
    """What to do without a download: which files to put where, or go synthetic."""
    missing = [FILES[split][0] for split in splits if not (root / FILES[split][0]).exists()]
    names = " and ".join(missing or [FILES[split][0] for split in splits])
    return f"put {names} (from {base_url}) in {root}, or use data=synthetic, which works offline"


def ensure_file(
    root: Path,
    split: str,
    *,
    verify: bool,
    download: bool,
    base_url: str = BASE_URL,
    hint: str | None = None,
) -> Path:
    """The verified local path of one SVHN split, downloading it if allowed.

    ``hint`` (from :func:`offline_hint`) tells a user without internet what to do; by
    default it names this split's file only.
    """
    name, expected = FILES[split]
    target = root / name
    hint = hint or offline_hint(root, [split], base_url)
    if target.exists():
        if verify and md5sum(target) != expected:
            raise DataError(
                f"{target} fails its MD5 check (expected {expected}): delete it to download "
                "again, or set data.verify=false to use it as it is"
            )
        return target
    if not download:
        raise DataError(f"{target} is missing and data.download=false: {hint}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create {root} for the SVHN files ({err.strerror or err}): set data.root "
            "to a writable folder"
        ) from err
    _download(base_url + name, target, expected, hint)
    return target


def parse_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 32, 32, 3), labels int64 (N,) in 0..9)`` from an SVHN .mat."""
    try:
        contents = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises many kinds (MatReadError, IndexError, ...)
        raise DataError(f"{path} is not a readable SVHN .mat file ({err})") from err
    if "X" not in contents or "y" not in contents:
        raise DataError(f"{path} has no 'X' and 'y' arrays: not an SVHN cropped-digits file")
    images, labels = contents["X"], contents["y"]
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.dtype != np.uint8:
        raise DataError(
            f"{path}: X has shape {images.shape} and dtype {images.dtype}; SVHN's is "
            "(32, 32, 3, N) uint8"
        )
    if labels.shape != (images.shape[3], 1):
        raise DataError(
            f"{path}: y has shape {labels.shape}; expected ({images.shape[3]}, 1) to match X"
        )
    labels = labels.reshape(-1)
    if labels.dtype.kind == "f":
        # The cast below would truncate: a label of 1.5 would silently become 1.
        fractional = labels[~np.isfinite(labels) | (labels != np.round(labels))]
        if fractional.size:
            raise DataError(
                f"{path}: label {fractional[0]} is not a whole number; SVHN's y holds the "
                "integers 1..10 (10 means digit 0)"
            )
    elif labels.dtype.kind not in "iu":
        raise DataError(f"{path}: y has dtype {labels.dtype}; SVHN's holds the integers 1..10")
    labels = labels.astype(np.int64)
    outside = labels[(labels < 1) | (labels > 10)]
    if outside.size:
        raise DataError(f"{path}: label {outside[0]} is outside SVHN's 1..10 (10 means digit 0)")
    labels[labels == 10] = 0
    return np.ascontiguousarray(np.transpose(images, (3, 0, 1, 2))), labels


def load_splits(
    root: Path, splits: list[str], *, verify: bool, download: bool, base_url: str = BASE_URL
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Images and digits of each split (``train``, ``test``, ``extra``), fetched if allowed.

    Every file is checked before any is parsed, so a missing or corrupt one is reported
    before minutes go into reading the others.
    """
    hint = offline_hint(root, splits, base_url)
    paths = [
        ensure_file(root, split, verify=verify, download=download, base_url=base_url, hint=hint)
        for split in splits
    ]
    return {split: parse_mat(path) for split, path in zip(splits, paths, strict=True)}
