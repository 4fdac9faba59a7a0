"""Data: SVHN's file format, checksums, bad files, label budgets, synthetic digits, streams."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from omegaconf import OmegaConf

from ssgan.data import load_data, svhn, synthetic
from ssgan.data.pipeline import eval_batches, train_batches
from ssgan.data.split import balanced_label_budget, validation_split
from ssgan.errors import DataError


def write_svhn_mat(path: Path, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small file in SVHN's exact layout: X (32, 32, 3, N) uint8, y (N, 1) in 1..10."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    digits = np.arange(count) % 10
    labels = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)
    scipy.io.savemat(str(path), {"X": np.transpose(images, (1, 2, 3, 0)), "y": labels})
    return images, digits


def svhn_cfg(root: Path, **extra) -> OmegaConf:
    base = dict(name="svhn", root=str(root), verify=False, download=False, use_extra=False)
    base |= dict(num_labeled=20, val_size=10, batch_size=8, seed=0, synthetic_seed=0)
    base |= dict(train_size=73257, test_size=26032, num_workers=1)
    return OmegaConf.create({**base, **extra})


def test_svhn_round_trip_label_10_is_0_and_shape_order(tmp_path: Path) -> None:
    images, digits = write_svhn_mat(tmp_path / "train_32x32.mat", 30)
    parsed_images, parsed_labels = svhn.parse_mat(tmp_path / "train_32x32.mat")
    assert parsed_images.shape == (30, 32, 32, 3) and parsed_images.dtype == np.uint8
    np.testing.assert_array_equal(parsed_images, images)
    np.testing.assert_array_equal(parsed_labels, digits)
    assert parsed_labels.min() == 0 and parsed_labels.max() == 9


def test_load_data_from_svhn_files(tmp_path: Path) -> None:
    write_svhn_mat(tmp_path / "train_32x32.mat", 100)
    test_images, test_digits = write_svhn_mat(tmp_path / "test_32x32.mat", 20, seed=1)
    data = load_data(svhn_cfg(tmp_path))
    assert len(data.val_x) == 10 and len(data.unlabelled_x) == 90
    assert len(data.labelled_x) == 20 and np.bincount(data.labelled_y).tolist() == [2] * 10
    np.testing.assert_array_equal(data.test_x, test_images)
    np.testing.assert_array_equal(data.test_y, test_digits)
    assert data.fingerprint.startswith("svhn:")


def test_checksum_mismatch_is_refused_unless_verify_is_off(tmp_path: Path) -> None:
    write_svhn_mat(tmp_path / "train_32x32.mat", 100)
    write_svhn_mat(tmp_path / "test_32x32.mat", 20)
    with pytest.raises(DataError, match="fails its MD5 check") as caught:
        load_data(svhn_cfg(tmp_path, verify=True))
    assert "data.verify=false" in str(caught.value) and "\n" not in str(caught.value)
    load_data(svhn_cfg(tmp_path, verify=False))


def test_offline_without_files_names_the_place_and_synthetic(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_data(svhn_cfg(tmp_path / "nowhere"))
    message = str(caught.value)
    assert "train_32x32.mat" in message and "data=synthetic" in message
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        ({"X": np.zeros((32, 32, 3, 4), np.uint8)}, "no 'X' and 'y'"),
        ({"X": np.zeros((28, 28, 3, 4), np.uint8), "y": np.ones((4, 1))}, "(32, 32, 3, N) uint8"),
        ({"X": np.zeros((32, 32, 3, 4), np.float32), "y": np.ones((4, 1))}, "dtype float32"),
        ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1))}, "to match X"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])}, "label 11"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [1]])}, "label 0"),
    ],
)
def test_bad_mat_contents(tmp_path: Path, contents: dict, expected: str) -> None:
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(str(path), contents)
    with pytest.raises(DataError, match="train_32x32.mat") as caught:
        svhn.parse_mat(path)
    assert expected in str(caught.value)


def test_truncated_and_garbage_mat(tmp_path: Path) -> None:
    path = tmp_path / "train_32x32.mat"
    write_svhn_mat(path, 30)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match="not a readable SVHN .mat"):
        svhn.parse_mat(path)
    path.write_bytes(b"definitely not matlab")
    with pytest.raises(DataError, match="not a readable SVHN .mat"):
        svhn.parse_mat(path)


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(folder: Path):
    handler = lambda *a, **k: _Files(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_verifies_then_renames_and_rejects_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    write_svhn_mat(remote / "test_32x32.mat", 12)
    digest = hashlib.md5((remote / "test_32x32.mat").read_bytes()).hexdigest()
    server = _serve(remote)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        monkeypatch.setitem(svhn.FILES, "test", ("test_32x32.mat", digest))
        local = tmp_path / "local"
        path = svhn.ensure_file(local, "test", verify=True, download=True, base_url=base)
        assert path.read_bytes() == (remote / "test_32x32.mat").read_bytes()
        assert sorted(p.name for p in local.iterdir()) == ["test_32x32.mat"]
        # A corrupted download: nothing is left behind, not even a partial file.
        monkeypatch.setitem(svhn.FILES, "test", ("test_32x32.mat", "0" * 32))
        other = tmp_path / "other"
        with pytest.raises(DataError, match="MD5"):
            svhn.ensure_file(other, "test", verify=True, download=True, base_url=base)
        assert list(other.iterdir()) == []
    finally:
        server.shutdown()


def test_balanced_budget_reproducible_and_disjoint_from_validation() -> None:
    labels = np.arange(1000) % 10
    pool, val = validation_split(1000, 100, seed=3)
    assert not set(pool) & set(val) and len(pool) == 900
    first = balanced_label_budget(labels, pool, 100, 10, seed=3)
    assert np.bincount(labels[first]).tolist() == [10] * 10
    assert not set(first) & set(val)
    np.testing.assert_array_equal(first, balanced_label_budget(labels, pool, 100, 10, seed=3))
    assert not np.array_equal(first, balanced_label_budget(labels, pool, 100, 10, seed=4))
    uneven = balanced_label_budget(labels, pool, 25, 10, seed=0)
    assert sorted(np.bincount(labels[uneven]).tolist()) == [2] * 5 + [3] * 5


@pytest.mark.parametrize(
    ("num_labeled", "message"), [(5, ">= 10"), (950, "larger than the labelled pool")]
)
def test_impossible_budgets(num_labeled: int, message: str) -> None:
    labels = np.arange(1000) % 10
    pool, _ = validation_split(1000, 100, seed=0)
    with pytest.raises(DataError, match=message):
        balanced_label_budget(labels, pool, num_labeled, 10, seed=0)


def test_budget_needing_more_of_a_class_than_exists() -> None:
    labels = np.array([0] * 50 + [1] * 3 + list(range(2, 10)) * 10)
    pool = np.arange(len(labels))
    with pytest.raises(DataError, match="class 1"):
        balanced_label_budget(labels, pool, 50, 10, seed=0)


def test_synthetic_is_deterministic_and_cached(tmp_path: Path, monkeypatch) -> None:
    first, key = synthetic.load_synthetic(tmp_path, seed=5, train_size=40, test_size=10, workers=2)
    again, _ = synthetic.generate(5, "train", 40, workers=1)
    np.testing.assert_array_equal(first["train_x"], again)
    assert first["train_x"].shape == (40, 32, 32, 3) and set(first["train_y"]) <= set(range(10))
    other, _ = synthetic.generate(6, "train", 40, workers=1)
    assert not np.array_equal(again, other)
    cache = tmp_path / "synthetic" / f"digits-{key}.npz"
    assert cache.is_file() and [p.name for p in cache.parent.iterdir()] == [cache.name]

    def must_not_run(*args, **kwargs):
        raise AssertionError("cached data was generated again")

    monkeypatch.setattr(synthetic, "generate", must_not_run)
    cached, _ = synthetic.load_synthetic(tmp_path, seed=5, train_size=40, test_size=10)
    np.testing.assert_array_equal(cached["train_x"], first["train_x"])


def test_synthetic_grid_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "grid.png"
    result = subprocess.run(
        [sys.executable, "-m", "ssgan.data.synthetic", "--grid", str(out), "--rows", "2",
         "--cols", "3"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    from PIL import Image

    # 3 columns x 2 rows of 32-pixel tiles with 2-pixel gaps, magnified 3 times.
    assert Image.open(out).size == ((3 * 34 + 2) * 3, (2 * 34 + 2) * 3)


def _tiny_data(tmp_path: Path):
    write_svhn_mat(tmp_path / "train_32x32.mat", 100)
    write_svhn_mat(tmp_path / "test_32x32.mat", 20, seed=1)
    return load_data(svhn_cfg(tmp_path))


def test_train_batches_resume_at_any_step(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path)
    from_start = list(train_batches(data, 8, seed=1).take(30).as_numpy_iterator())
    resumed = list(train_batches(data, 8, seed=1, start_step=17).take(13).as_numpy_iterator())
    for expected, actual in zip(from_start[17:], resumed, strict=True):
        for a, b in zip(expected, actual, strict=True):
            np.testing.assert_array_equal(a, b)
    labelled, labels, unlabelled = from_start[0]
    assert labelled.dtype == np.float32 and labelled.shape == (8, 32, 32, 3)
    assert labelled.min() >= -1.0 and labelled.max() <= 1.0
    assert labels.dtype == np.int64 and unlabelled.shape == (8, 32, 32, 3)
    other_seed = next(train_batches(data, 8, seed=2).as_numpy_iterator())
    assert not np.array_equal(other_seed[2], unlabelled)


def test_labelled_stream_cycles_through_every_label_once_per_pass(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path)  # 20 labelled images, batches of 8: a pass every 2.5 steps
    batches = list(train_batches(data, 8, seed=0).take(5).as_numpy_iterator())
    seen = np.concatenate([b[0] for b in batches])  # 40 images = exactly 2 passes
    first_pass, second_pass = seen[:20], seen[20:]
    key = lambda x: sorted(map(bytes, x))  # noqa: E731
    labelled = data.labelled_x.astype(np.float32) / 127.5 - 1.0
    assert key(first_pass) == key(second_pass) == key(labelled)


def test_eval_batches_keep_order_and_scale_exactly(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path)
    batches = eval_batches(data.test_x, data.test_y, 6).as_numpy_iterator()
    images = np.concatenate([x for x, _ in batches])
    np.testing.assert_array_equal(images, data.test_x.astype(np.float32) / 127.5 - 1.0)
