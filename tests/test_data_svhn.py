"""SVHN files: the format round trip, checksums, download, bad files, loading a run's data."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ssgan.config import DataConfig
from ssgan.data import load_data, svhn
from ssgan.errors import DataError
from tests.helpers.svhn_files import write_svhn_mat


def svhn_cfg(root: Path, **extra: object) -> DataConfig:
    base = dict(name="svhn", root=str(root), verify=False, download=False, use_extra=False)
    base |= dict(num_labeled=20, val_size=10, batch_size=8, seed=0, synthetic_seed=0)
    base |= dict(train_size=73257, test_size=26032, num_workers=1)
    return DataConfig(**{**base, **extra})  # type: ignore[arg-type]


@pytest.mark.unit
def test_round_trip_label_10_is_0_and_shape_order(tmp_path: Path) -> None:
    images, digits = write_svhn_mat(tmp_path / "train_32x32.mat", 30)
    parsed_images, parsed_labels = svhn.parse_mat(tmp_path / "train_32x32.mat")
    assert parsed_images.shape == (30, 32, 32, 3) and parsed_images.dtype == np.uint8
    assert parsed_labels.dtype == np.int64
    np.testing.assert_array_equal(parsed_images, images)
    np.testing.assert_array_equal(parsed_labels, digits)
    assert parsed_labels[0] == 0 and parsed_labels.max() == 9


@pytest.mark.unit
def test_load_data_splits_svhn_files(tmp_path: Path) -> None:
    train_images, train_digits = write_svhn_mat(tmp_path / "train_32x32.mat", 100)
    test_images, test_digits = write_svhn_mat(tmp_path / "test_32x32.mat", 20, seed=1)
    data = load_data(svhn_cfg(tmp_path))
    assert len(data.val_x) == 10 and len(data.unlabelled_x) == 90
    assert len(data.labelled_x) == 20 and np.bincount(data.labelled_y).tolist() == [2] * 10
    np.testing.assert_array_equal(data.labelled_x, train_images[data.labelled_indices])
    np.testing.assert_array_equal(data.labelled_y, train_digits[data.labelled_indices])
    np.testing.assert_array_equal(data.test_x, test_images)
    np.testing.assert_array_equal(data.test_y, test_digits)
    assert data.fingerprint.startswith("svhn:")


@pytest.mark.unit
def test_extra_images_join_the_unlabelled_pool_only(tmp_path: Path) -> None:
    write_svhn_mat(tmp_path / "train_32x32.mat", 100)
    write_svhn_mat(tmp_path / "test_32x32.mat", 20, seed=1)
    extra_images, _ = write_svhn_mat(tmp_path / "extra_32x32.mat", 30, seed=2)
    data = load_data(svhn_cfg(tmp_path, use_extra=True))
    assert len(data.unlabelled_x) == 90 + 30 and len(data.labelled_x) == 20
    np.testing.assert_array_equal(data.unlabelled_x[-30:], extra_images)
    assert data.fingerprint.startswith("svhn+extra:")


@pytest.mark.unit
def test_fingerprint_follows_the_pixels_and_the_choices(tmp_path: Path) -> None:
    write_svhn_mat(tmp_path / "train_32x32.mat", 100)
    write_svhn_mat(tmp_path / "test_32x32.mat", 20, seed=1)
    first = load_data(svhn_cfg(tmp_path)).fingerprint
    assert load_data(svhn_cfg(tmp_path)).fingerprint == first
    assert load_data(svhn_cfg(tmp_path, seed=1)).fingerprint != first
    write_svhn_mat(tmp_path / "test_32x32.mat", 20, seed=9)  # same names, other pixels
    assert load_data(svhn_cfg(tmp_path)).fingerprint != first


@pytest.mark.unit
def test_checksum_mismatch_is_refused_unless_verify_is_off(tmp_path: Path) -> None:
    write_svhn_mat(tmp_path / "train_32x32.mat", 100)
    write_svhn_mat(tmp_path / "test_32x32.mat", 20)
    with pytest.raises(DataError, match="train_32x32.mat fails its MD5 check") as caught:
        load_data(svhn_cfg(tmp_path, verify=True))
    assert "data.verify=false" in str(caught.value) and "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_32x32.mat", "train_32x32.mat"]
    load_data(svhn_cfg(tmp_path, verify=False))


@pytest.mark.unit
def test_verified_files_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for split, seed in (("train", 0), ("test", 1)):
        name = f"{split}_32x32.mat"
        write_svhn_mat(tmp_path / name, 100 if split == "train" else 20, seed)
        digest = hashlib.md5((tmp_path / name).read_bytes()).hexdigest()
        monkeypatch.setitem(svhn.FILES, split, (name, digest))
    assert len(load_data(svhn_cfg(tmp_path, verify=True)).test_x) == 20


@pytest.mark.unit
def test_offline_without_files_names_the_place_and_synthetic(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_data(svhn_cfg(tmp_path / "nowhere"))
    message = str(caught.value)
    assert "put train_32x32.mat and test_32x32.mat (from http" in message
    assert f"in {tmp_path / 'nowhere'}" in message
    assert "data=synthetic" in message and "\n" not in message
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.unit
def test_offline_hint_names_only_what_is_missing(tmp_path: Path) -> None:
    write_svhn_mat(tmp_path / "train_32x32.mat", 100)
    with pytest.raises(DataError) as caught:
        load_data(svhn_cfg(tmp_path, use_extra=True))
    message = str(caught.value)
    assert "test_32x32.mat is missing and data.download=false" in message
    assert "put test_32x32.mat and extra_32x32.mat (from" in message
    assert "put train_32x32.mat" not in message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.integration
def test_unreachable_server_says_where_to_put_the_files(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(DataError) as caught:
        svhn.load_splits(tmp_path, ["train", "test"], verify=True, download=True, base_url=base)
    message = str(caught.value)
    assert message.startswith(f"cannot download {base}train_32x32.mat (")
    assert f"put train_32x32.mat and test_32x32.mat (from {base}) in {tmp_path}" in message
    assert "data=synthetic" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        ({"X": np.zeros((32, 32, 3, 4), np.uint8)}, "no 'X' and 'y'"),
        ({"X": np.zeros((28, 28, 3, 4), np.uint8), "y": np.ones((4, 1))}, "(32, 32, 3, N) uint8"),
        ({"X": np.zeros((32, 32, 3, 4), np.float32), "y": np.ones((4, 1))}, "dtype float32"),
        ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1))}, "to match X"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])}, "label 11"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [1]])}, "label 0"),
        (
            {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1.0], [10.5]])},
            "label 10.5 is not a whole number",
        ),
        ({"X": np.zeros((32, 32, 3, 1), np.uint8), "y": np.array([[np.nan]])}, "label nan"),
        ({"X": np.zeros((32, 32, 3, 1), np.uint8), "y": np.array([["7"]])}, "y has dtype"),
    ],
)
def test_bad_mat_contents(tmp_path: Path, contents: dict, expected: str) -> None:
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(str(path), contents)
    with pytest.raises(DataError, match="train_32x32.mat") as caught:
        svhn.parse_mat(path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.unit
def test_whole_float_labels_are_read_as_digits(tmp_path: Path) -> None:
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(str(path), {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": [[3.0], [10.0]]})
    assert svhn.parse_mat(path)[1].tolist() == [3, 0]


@pytest.mark.unit
def test_truncated_and_garbage_mat(tmp_path: Path) -> None:
    path = tmp_path / "train_32x32.mat"
    write_svhn_mat(path, 30)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match="not a readable SVHN .mat") as caught:
        svhn.parse_mat(path)
    assert "\n" not in str(caught.value)
    path.write_bytes(b"definitely not matlab")
    with pytest.raises(DataError, match="not a readable SVHN .mat"):
        svhn.parse_mat(path)


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on the loopback interface, and its base URL."""
    folder = tmp_path / "remote"
    folder.mkdir()

    def handler(*args: object, **kwargs: object) -> _QuietFiles:
        return _QuietFiles(*args, directory=str(folder), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.e2e
def test_download_verifies_then_renames(
    tmp_path: Path, file_server: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, base = file_server
    write_svhn_mat(remote / "test_32x32.mat", 12)
    digest = hashlib.md5((remote / "test_32x32.mat").read_bytes()).hexdigest()
    monkeypatch.setitem(svhn.FILES, "test", ("test_32x32.mat", digest))
    local = tmp_path / "local"
    path = svhn.ensure_file(local, "test", verify=True, download=True, base_url=base)
    assert path.read_bytes() == (remote / "test_32x32.mat").read_bytes()
    assert sorted(p.name for p in local.iterdir()) == ["test_32x32.mat"]
    # The verified cache is reused: the server's copy is gone, the call still succeeds.
    (remote / "test_32x32.mat").unlink()
    assert svhn.ensure_file(local, "test", verify=True, download=True, base_url=base) == path


@pytest.mark.e2e
def test_corrupted_download_leaves_nothing_behind(
    tmp_path: Path, file_server: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, base = file_server
    write_svhn_mat(remote / "test_32x32.mat", 12)
    monkeypatch.setitem(svhn.FILES, "test", ("test_32x32.mat", "0" * 32))
    local = tmp_path / "local"
    with pytest.raises(DataError, match="downloaded test_32x32.mat has MD5 .* expected 0{32}"):
        svhn.ensure_file(local, "test", verify=True, download=True, base_url=base)
    assert list(local.iterdir()) == []


@pytest.mark.unit
def test_unwritable_root_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "svhn").write_text("a file where the data folder should be")
    with pytest.raises(DataError, match="cannot create .*svhn for the SVHN files .*data.root"):
        svhn.ensure_file(tmp_path / "svhn", "test", verify=True, download=True)


@pytest.mark.unit
def test_the_svhn_option_declares_the_files_sizes() -> None:
    """Label budgets are checked against data.train_size before any file is read: the svhn
    option must declare the released files' sizes, which the digit counts add up to."""
    from ssgan.cli import compose_config
    from ssgan.data.svhn_reference import CLASS_COUNTS, SPLIT_SIZES

    data = compose_config("config", ["data=svhn"]).data
    assert (data.train_size, data.test_size) == (SPLIT_SIZES["train"], SPLIT_SIZES["test"])
    assert {split: sum(counts) for split, counts in CLASS_COUNTS.items()} == {
        "train": SPLIT_SIZES["train"],
        "test": SPLIT_SIZES["test"],
    }
