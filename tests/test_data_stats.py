"""The data statistics: each figure on hand-computed arrays, chunking, and the command
(``python -m ssgan.data_stats``) on tiny synthetic and SVHN-format data and bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ssgan import data_stats
from ssgan.data import statistics_report, svhn_reference
from ssgan.data.statistics import (
    SplitStatistics,
    class_frequencies,
    laplacian,
    mean_figures,
    split_statistics,
)
from ssgan.data.synthetic import GENERATOR_VERSION
from ssgan.errors import UserError
from tests.helpers.processes import run_cli
from tests.helpers.svhn_files import write_svhn_mat


def rgb(grey_levels: list[list[int]]) -> np.ndarray:
    """One image whose three channels are all ``grey_levels``: (1, H, W, 3) uint8."""
    grey = np.array(grey_levels, dtype=np.uint8)
    return np.repeat(grey[None, :, :, None], 3, axis=-1)


def statistics_of(images: np.ndarray) -> SplitStatistics:
    return split_statistics(images, np.zeros(len(images), dtype=np.int64))


@pytest.mark.unit
def test_class_frequencies_are_each_digits_share() -> None:
    shares = class_frequencies(np.array([0, 0, 1, 9]))
    assert shares == (0.5, 0.25, 0, 0, 0, 0, 0, 0, 0, 0.25)
    with pytest.raises(ValueError, match="0..9"):
        class_frequencies(np.array([3, 10]))


@pytest.mark.unit
def test_laplacian_of_a_3x3_grey_image() -> None:
    grey = np.array([[[0.0, 0.2, 0.0], [0.4, 1.0, 0.6], [0.0, 0.8, 0.0]]])
    # 0.2 + 0.8 + 0.4 + 0.6 - 4 * 1.0 at the one interior pixel; corners do not count
    np.testing.assert_allclose(laplacian(grey), [[[-2.0]]])
    image = rgb([[0, 51, 0], [102, 255, 153], [0, 204, 0]])
    assert statistics_of(image).sharpness == pytest.approx(2.0)


@pytest.mark.unit
def test_sharpness_takes_grey_as_the_mean_of_the_channels() -> None:
    image = np.zeros((1, 3, 3, 3), dtype=np.uint8)
    image[0, 1, 1] = (153, 0, 0)  # grey 0.6 / 3 = 0.2
    image[0, 0, 1] = (0, 255, 0)  # grey 1 / 3
    assert statistics_of(image).sharpness == pytest.approx(abs(1 / 3 - 4 * 0.2))


@pytest.mark.unit
def test_saturation_is_the_mean_of_max_minus_min_channel() -> None:
    image = np.full((1, 3, 3, 3), 10, dtype=np.uint8)  # grey pixels: saturation 0
    image[0, 2, 0] = (255, 102, 51)  # (255 - 51) / 255 = 0.8
    assert statistics_of(image).saturation == pytest.approx(0.8 / 9)


@pytest.mark.unit
def test_channel_mean_and_std_are_over_all_pixels_of_the_split() -> None:
    images = np.zeros((2, 3, 3, 3), dtype=np.uint8)
    images[1, :, :, 0] = 255  # R: half the pixels 0, half 1
    images[:, :, :, 1] = 51  # G: 0.2 everywhere
    images[:, 0, :, 2] = 255  # B: one row in three is 1
    stats = statistics_of(images)
    assert stats.channel_mean == pytest.approx((0.5, 0.2, 1 / 3))
    assert stats.channel_std == pytest.approx((0.5, 0.0, np.sqrt(2) / 3), abs=1e-7)


@pytest.mark.unit
def test_contrast_is_the_mean_of_each_grey_images_std() -> None:
    checkerboard = np.indices((4, 4)).sum(axis=0) % 2 * 255
    flat = np.full((4, 4), 128)
    stats = statistics_of(np.concatenate([rgb(checkerboard.tolist()), rgb(flat.tolist())]))
    assert stats.contrast == pytest.approx((0.5 + 0.0) / 2)
    # every interior pixel of the checkerboard differs by 1 from its four neighbours
    assert stats.sharpness == pytest.approx((4.0 + 0.0) / 2)


@pytest.mark.unit
def test_chunked_equals_unchunked_and_a_direct_float64_computation() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 23)
    whole = mean_figures(images, chunk_size=23)
    for chunk_size in (1, 5, 2000):
        np.testing.assert_allclose(mean_figures(images, chunk_size), whole, rtol=1e-6)
    stats = split_statistics(images, labels, chunk_size=5)
    pixels = images.astype(np.float64) / 255
    grey = pixels.mean(axis=-1)
    direct_laplacian = (
        grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
    ) - 4 * grey[:, 1:-1, 1:-1]
    assert stats.channel_mean == pytest.approx(tuple(pixels.mean(axis=(0, 1, 2))), rel=1e-5)
    assert stats.channel_std == pytest.approx(tuple(pixels.std(axis=(0, 1, 2))), rel=1e-5)
    assert stats.sharpness == pytest.approx(np.abs(direct_laplacian).mean(), rel=1e-5)
    assert stats.saturation == pytest.approx((pixels.max(-1) - pixels.min(-1)).mean(), rel=1e-5)
    assert stats.contrast == pytest.approx(grey.std(axis=(1, 2)).mean(), rel=1e-5)
    assert stats.class_frequencies == pytest.approx(tuple(np.bincount(labels, minlength=10) / 23))


def run_main(monkeypatch: pytest.MonkeyPatch, *overrides: str) -> int:
    """``python -m ssgan.data_stats overrides`` in this process; its exit status."""
    monkeypatch.setattr(sys, "argv", ["ssgan/data_stats.py", *overrides])
    try:
        data_stats.main()
    except SystemExit as stopped:
        return int(stopped.code or 0)
    return 0


def tiny(root: Path) -> list[str]:
    return [
        "data.train_size=60",
        "data.test_size=20",
        "data.val_size=10",
        f"data.root={root / 'data'}",
        "data.num_workers=1",
    ]


def table_row(text: str, figure: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(f"| {figure} ")]
    return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.mark.integration
def test_command_prints_the_table_and_writes_the_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "stats.md"
    assert run_main(monkeypatch, *tiny(tmp_path), f"output={output}") == 0
    printed = capsys.readouterr().out
    assert "synthetic train split: 60 images" in printed
    shares = svhn_reference.class_frequencies("train")
    assert table_row(printed, "share of digit 1")[2:] == [f"{shares[1]:.4f}", "[1]"]
    assert table_row(printed, "R mean")[2] == "0.4377"
    assert table_row(printed, "sharpness (mean abs. Laplacian)")[2] == "0.0370"
    assert table_row(printed, "contrast (mean RMS)")[2:] == ["—", "none published"]
    assert "[1] Netzer et al. 2011" in printed
    written = output.read_text()
    assert written.startswith("# Data statistics: synthetic train split\n")
    for line in ("- machine: ", "- date: 20", "- git commit: ", "- command: `python -m"):
        assert f"\n{line}" in written
    assert f"- synthetic generator version: {GENERATOR_VERSION}\n" in written
    assert "output=" in written and table_row(written, "R mean") == table_row(printed, "R mean")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "stats.md"]


@pytest.mark.integration
def test_test_split_is_set_beside_svhns_test_shares(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_main(monkeypatch, *tiny(tmp_path), "split=test") == 0
    printed = capsys.readouterr().out
    assert "synthetic test split: 20 images" in printed
    shares = svhn_reference.class_frequencies("test")
    assert table_row(printed, "share of digit 0")[2] == f"{shares[0]:.4f}"
    assert "released test_32x32.mat" in printed
    assert not (tmp_path / "stats.md").exists()


@pytest.mark.integration
def test_real_svhn_files_are_measured_beside_the_published_figures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    images, _ = write_svhn_mat(tmp_path / "train_32x32.mat", 30)
    write_svhn_mat(tmp_path / "test_32x32.mat", 20, seed=1)
    overrides = ("data=svhn", f"data.root={tmp_path}", "data.download=false", "data.verify=false")
    assert run_main(monkeypatch, *overrides, f"output={tmp_path / 'svhn.md'}") == 0
    printed = capsys.readouterr().out
    assert "svhn train split: 30 images (svhn)" in printed
    assert table_row(printed, "share of digit 0")[1:3] == ["0.1000", "0.0675"]
    red = images[..., 0].mean() / 255
    assert table_row(printed, "R mean")[1:3] == [f"{red:.4f}", "0.4377"]
    written = (tmp_path / "svhn.md").read_text()
    assert "# Data statistics: svhn train split" in written and "(not used: real data)" in written


def assert_one_error_line(capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.out + captured.err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("data.train_sise=60", ["unknown key 'data.train_sise'"]),
        ("+colour=red", ["unknown key 'colour'"]),
        ("split=val", ["split=val is not a valid choice: allowed train, test"]),
        ("data.train_size=0", ["data.train_size=0 is out of range"]),
        ("data=mnist", ["data=mnist", "available: svhn, synthetic"]),
    ],
)
def test_bad_config_is_one_line_exit_2_before_any_data(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    override: str,
    fragments: list[str],
) -> None:
    assert run_main(monkeypatch, *tiny(tmp_path), override) == 2
    assert_one_error_line(capsys, *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "fragment"),
    [("missing/stats.md", "there is no folder"), (".", "is a folder: name a file")],
)
def test_unwritable_output_is_refused_before_any_data(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    fragment: str,
) -> None:
    assert run_main(monkeypatch, *tiny(tmp_path), f"output={tmp_path / name}") == 2
    assert_one_error_line(capsys, "output=", fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.unit
def test_missing_svhn_files_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "stats.md"
    overrides = ("data=svhn", f"data.root={tmp_path / 'svhn'}", "data.download=false")
    assert run_main(monkeypatch, *overrides, f"output={output}") == 2
    assert_one_error_line(capsys, "train_32x32.mat", "data.download=false")
    assert not output.exists()


@pytest.mark.unit
def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    output = tmp_path / "stats.md"
    output.write_text("before")

    def refuse(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(statistics_report.os, "replace", refuse)
    with pytest.raises(UserError, match="cannot write .*stats.md: No space left on device"):
        statistics_report.write_atomically(output, "after")
    assert output.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["stats.md"]


@pytest.mark.e2e
def test_command_line_error_from_a_shell(tmp_path: Path) -> None:
    result = run_cli("ssgan.data_stats", "split=validation", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: split=validation is not a valid choice: allowed train, test"
    ]
    assert list(tmp_path.iterdir()) == []
