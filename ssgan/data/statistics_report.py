"""The data statistics command's table: one split's figures beside SVHN's published ones.

Measures a split of the configured data set with :mod:`ssgan.data.statistics`, reading
the arrays a training run reads (:func:`ssgan.data.raw_splits`), and sets each figure
beside SVHN's from :mod:`ssgan.data.svhn_reference` in a markdown table whose sources
are numbered below it. The table can be kept in a markdown file headed by where and how
it was made, written whole or not at all.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ssgan import files
from ssgan.config import DATA_STATS_SPLITS, DataConfig
from ssgan.data import raw_splits, svhn_reference
from ssgan.data.statistics import SplitStatistics, split_statistics
from ssgan.data.svhn_reference import Reference
from ssgan.data.synthetic import GENERATOR_VERSION
from ssgan.errors import ConfigError, DiskFullError, UserError, disk_full_reason

NO_FIGURE = "—"
NO_SOURCE = "none published"  # SVHN has no published figure for it


@dataclass(frozen=True)
class Measurement:
    """One split's figures and what they were measured on."""

    data_name: str  # data.name: synthetic or svhn
    split: str
    source: str  # the data set and its version, e.g. synthetic-<cache key>
    statistics: SplitStatistics


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, its measured value and SVHN's (if published)."""

    figure: str
    measured: float
    reference: Reference | None


def measure(data_cfg: DataConfig, split: str) -> Measurement:
    """Load (generating or downloading as training does) and measure ``split``."""
    if split not in DATA_STATS_SPLITS:
        allowed = ", ".join(DATA_STATS_SPLITS)
        raise ConfigError(f"split={split} is not a valid choice: allowed {allowed}")
    arrays, source, _ = raw_splits(data_cfg)
    statistics = split_statistics(arrays[f"{split}_x"], arrays[f"{split}_y"])
    return Measurement(data_cfg.name, split, source, statistics)


def comparison_rows(statistics: SplitStatistics, split: str) -> list[Row]:
    """The table's rows, SVHN's class shares taken from the same split."""
    shares = zip(
        statistics.class_frequencies,
        svhn_reference.class_frequency_references(split),
        strict=True,
    )
    rows = [Row(f"share of digit {digit}", value, ref) for digit, (value, ref) in enumerate(shares)]
    for name, values, references in (
        ("mean", statistics.channel_mean, svhn_reference.CHANNEL_MEAN),
        ("std", statistics.channel_std, svhn_reference.CHANNEL_STD),
    ):
        channels = zip("RGB", values, references, strict=True)
        rows += [Row(f"{channel} {name}", value, ref) for channel, value, ref in channels]
    return rows + [
        Row("sharpness (mean abs. Laplacian)", statistics.sharpness, svhn_reference.SHARPNESS),
        Row("saturation (mean max - min)", statistics.saturation, svhn_reference.SATURATION),
        Row("contrast (mean RMS)", statistics.contrast, None),
    ]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table with padded columns (readable as plain text too); every column
    but the first and last holds numbers and is right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    last = len(header) - 1

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if i in (0, last) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        "-" * width if i in (0, last) else "-" * (width - 1) + ":" for i, width in enumerate(widths)
    ]
    return [line(header), line(rule), *(line(row) for row in rows)]


def format_table(measurement: Measurement) -> str:
    """The figures beside SVHN's, a caption above and the numbered sources below."""
    rows = comparison_rows(measurement.statistics, measurement.split)
    sources = list(dict.fromkeys(row.reference.source for row in rows if row.reference))
    cells = []
    for row in rows:
        ref = row.reference
        published = f"{ref.value:.4f}" if ref else NO_FIGURE
        source = f"[{sources.index(ref.source) + 1}]" if ref else NO_SOURCE
        cells.append((row.figure, f"{row.measured:.4f}", published, source))
    header = ("figure", measurement.data_name, "SVHN", "SVHN source")
    caption = (
        f"{measurement.data_name} {measurement.split} split: "
        f"{measurement.statistics.images:,} images ({measurement.source}); pixels in [0, 1]"
    )
    notes = [f"- [{number}] {source}" for number, source in enumerate(sources, start=1)]
    return "\n".join([caption, "", *markdown_table(header, cells), "", "Sources:", *notes])


@dataclass(frozen=True)
class Provenance:
    """Where and how a statistics file was made."""

    machine: str
    date: str
    commit: str
    generator_version: int
    command: str

    @classmethod
    def now(cls, machine: Mapping[str, Any], commit: str, argv: Sequence[str]) -> Provenance:
        """From :func:`ssgan.benchmarks.machine.describe_machine`'s ``cpu`` and ``cores``,
        the commit as the command found it, and ``sys.argv``."""
        return cls(
            machine=f"{machine['cpu']}, {machine['cores']} cores",
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            commit=commit,
            generator_version=GENERATOR_VERSION,
            command=command_line(argv),
        )


def command_line(argv: Sequence[str]) -> str:
    """The command as a user would type it again (``python -m`` for the module form)."""
    program = Path(argv[0]).name if argv else "ssgan-data-stats"
    if program.endswith(".py"):
        program = "python -m ssgan.data_stats"
    return " ".join([program, *(shlex.quote(arg) for arg in argv[1:])])


def format_report(measurement: Measurement, provenance: Provenance) -> str:
    """The markdown file: a title, the provenance, then the table."""
    return "\n".join(
        [
            f"# Data statistics: {measurement.data_name} {measurement.split} split",
            "",
            f"- machine: {provenance.machine}",
            f"- date: {provenance.date}",
            f"- git commit: {provenance.commit}",
            f"- synthetic generator version: {provenance.generator_version}"
            + ("" if measurement.data_name == "synthetic" else " (not used: real data)"),
            f"- command: `{provenance.command}`",
            "",
            format_table(measurement),
            "",
        ]
    )


def check_output(output: str) -> Path | None:
    """The file ``output=`` names, once it is known to be writable (None when empty):
    refused before any data is read, not after minutes of generating."""
    if not output:
        return None
    path = Path(output).expanduser()
    if path.is_dir():
        raise ConfigError(f"output={output} is a folder: name a file, e.g. {path / 'stats.md'}")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"output={output}: there is no folder {folder} (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"output={output}: the folder {folder} is not writable")
    return path


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (:func:`ssgan.files.write_atomically`);
    a failure is one line."""
    try:
        files.write_atomically(path, text)
    except OSError as err:
        reason = disk_full_reason(err)
        if reason:
            raise DiskFullError(f"cannot write {path}: {reason}; free some space") from err
        raise UserError(f"cannot write {path}: {err.strerror or err}") from err
