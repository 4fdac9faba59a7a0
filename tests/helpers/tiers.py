"""The suite's tiers: every test is exactly one of them (see pyproject.toml's markers)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

TIERS = ("unit", "integration", "e2e")


def tier_problems(items: Iterable[pytest.Item]) -> list[str]:
    """One line for each test without exactly one tier marker, or marked slow outside e2e."""
    problems = []
    for item in items:
        tiers = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
        if len(tiers) != 1:
            shown = ", ".join(tiers) or "none"
            problems.append(f"{item.nodeid}: tier markers {shown}; give it exactly one")
        elif item.get_closest_marker("slow") and tiers != ["e2e"]:
            problems.append(f"{item.nodeid}: marked slow but {tiers[0]}; slow tests are e2e")
    return problems
