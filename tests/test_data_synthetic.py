"""Synthetic digits: deterministic per seed whatever the parallelism, cached, drawable."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssgan.data import synthetic
from ssgan.errors import DataError


@pytest.mark.integration
def test_generation_is_deterministic_whatever_the_workers() -> None:
    serial_x, serial_y = synthetic.generate(5, "train", 24, workers=1)
    parallel_x, parallel_y = synthetic.generate(5, "train", 24, workers=2)
    np.testing.assert_array_equal(serial_x, parallel_x)
    np.testing.assert_array_equal(serial_y, parallel_y)
    assert serial_x.shape == (24, 32, 32, 3) and serial_x.dtype == np.uint8
    assert serial_y.dtype == np.int64 and set(serial_y) <= set(range(10))
    image, label = synthetic.render_digit(5, "train", 7)
    np.testing.assert_array_equal(image, serial_x[7])
    assert label == serial_y[7]


@pytest.mark.integration
def test_seeds_and_splits_draw_different_images() -> None:
    train, _ = synthetic.generate(5, "train", 12, workers=1)
    assert not np.array_equal(train, synthetic.generate(6, "train", 12, workers=1)[0])
    assert not np.array_equal(train, synthetic.generate(5, "test", 12, workers=1)[0])


@pytest.mark.integration
def test_images_look_like_photos_not_flat_fills() -> None:
    images, labels = synthetic.generate(0, "train", 200, workers=1)
    assert np.bincount(labels, minlength=10).min() >= 8  # every digit is drawn
    spread = images.reshape(len(images), -1).astype(np.float32).std(axis=1)
    assert spread.min() > 5.0  # a digit on a plate, never a blank square
    assert len({tuple(img[0, 0]) for img in images}) > 150  # varied plate colours
    assert len(synthetic.font_paths()) >= 10


@pytest.mark.integration
def test_cache_is_written_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, key = synthetic.load_synthetic(tmp_path, seed=5, train_size=24, test_size=6, workers=2)
    np.testing.assert_array_equal(first["train_x"], synthetic.generate(5, "train", 24, 1)[0])
    assert first["test_x"].shape == (6, 32, 32, 3)
    cache = tmp_path / "synthetic" / f"digits-{key}.npz"
    assert [p.name for p in cache.parent.iterdir() if not p.name.endswith(".lock")] == [cache.name]
    written = cache.stat().st_mtime_ns

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("cached data was generated again")

    monkeypatch.setattr(synthetic, "generate", must_not_run)
    cached, again = synthetic.load_synthetic(tmp_path, seed=5, train_size=24, test_size=6)
    assert again == key and cache.stat().st_mtime_ns == written
    for name in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(cached[name], first[name])


@pytest.mark.unit
def test_cache_key_covers_every_parameter() -> None:
    keys = {
        synthetic.cache_key(0, 100, 10),
        synthetic.cache_key(1, 100, 10),
        synthetic.cache_key(0, 101, 10),
        synthetic.cache_key(0, 100, 11),
    }
    assert len(keys) == 4 and synthetic.cache_key(0, 100, 10) in keys


@pytest.mark.integration
def test_damaged_cache_is_made_again(tmp_path: Path) -> None:
    first, key = synthetic.load_synthetic(tmp_path, seed=1, train_size=12, test_size=4, workers=1)
    cache = tmp_path / "synthetic" / f"digits-{key}.npz"
    cache.write_bytes(cache.read_bytes()[:500])
    again, _ = synthetic.load_synthetic(tmp_path, seed=1, train_size=12, test_size=4, workers=1)
    np.testing.assert_array_equal(again["train_x"], first["train_x"])
    assert not [p for p in cache.parent.iterdir() if ".part-" in p.name]


@pytest.mark.integration
@pytest.mark.parametrize("swap", ["28x28-images", "labels-plus-20", "fewer-images"])
def test_a_valid_npz_that_is_not_the_set_counts_as_damaged(
    tmp_path: Path, swap: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, key = synthetic.load_synthetic(tmp_path, seed=1, train_size=12, test_size=4, workers=1)
    cache = tmp_path / "synthetic" / f"digits-{key}.npz"
    arrays = dict(first)
    if swap == "28x28-images":
        arrays["train_x"] = np.zeros((12, 28, 28, 3), np.uint8)
    elif swap == "labels-plus-20":
        arrays["train_y"] = first["train_y"] + 20
    else:
        arrays["test_x"], arrays["test_y"] = first["test_x"][:2], first["test_y"][:2]
    with open(cache, "wb") as handle:
        np.savez(handle, **arrays)
    caplog.clear()
    again, _ = synthetic.load_synthetic(tmp_path, seed=1, train_size=12, test_size=4, workers=1)
    for name in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(again[name], first[name])
    assert f"the synthetic data cache {cache} is damaged" in caplog.text  # a warning


@pytest.mark.e2e
def test_grid_command_draws_a_png(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    command = [sys.executable, "-m", "ssgan.data.synthetic", "--grid", str(out)]
    command += ["--rows", "2", "--cols", "3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # 3 columns x 2 rows of 32-pixel tiles with 2-pixel gaps, magnified 3 times.
    assert Image.open(out).size == ((3 * 34 + 2) * 3, (2 * 34 + 2) * 3)


@pytest.mark.unit
def test_unwritable_root_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "synthetic").write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match="cannot write the synthetic data cache in .*data.root"):
        synthetic.load_synthetic(tmp_path, seed=1, train_size=4, test_size=2, workers=1)


@pytest.mark.integration
def test_full_disk_leaves_no_partial_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_half_then_fail(file: Path, **arrays: np.ndarray) -> None:
        Path(file).write_bytes(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(synthetic.np, "savez", write_half_then_fail)
    with pytest.raises(DataError, match="No space left on device") as caught:
        synthetic.load_synthetic(tmp_path, seed=1, train_size=4, test_size=2, workers=1)
    assert "\n" not in str(caught.value)
    left = [p.name for p in (tmp_path / "synthetic").iterdir() if not p.name.endswith(".lock")]
    assert left == []
