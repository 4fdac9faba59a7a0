"""The suite's tier rule (tests/conftest.py applies it at collection): every test has
exactly one of the markers unit, integration, e2e, and a slow test is e2e."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.helpers.tiers import tier_problems

pytestmark = pytest.mark.unit


@dataclass
class Collected:
    """What the rule reads of a collected test: its id and its marks (its own, then its
    module's, as pytest's Item.iter_markers yields them)."""

    nodeid: str
    marks: list[pytest.Mark] = field(default_factory=list)

    def iter_markers(self):
        return iter(self.marks)

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return next((mark for mark in self.marks if mark.name == name), None)


def collected(name: str, *marks: str) -> Collected:
    return Collected(f"tests/test_x.py::{name}", [getattr(pytest.mark, m).mark for m in marks])


def test_one_tier_each_passes_and_none_or_two_are_named() -> None:
    fine = [collected("a", "unit"), collected("b", "parametrize", "integration")]
    assert tier_problems([*fine, collected("c", "slow", "e2e")]) == []
    untiered = [
        collected("none", "parametrize"),
        collected("two", "unit", "e2e"),
        collected("twice", "e2e", "e2e"),
    ]
    assert tier_problems(untiered) == [
        "tests/test_x.py::none: tier markers none; give it exactly one",
        "tests/test_x.py::two: tier markers unit, e2e; give it exactly one",
        "tests/test_x.py::twice: tier markers e2e, e2e; give it exactly one",
    ]


def test_a_slow_test_is_e2e() -> None:
    assert tier_problems([collected("s", "slow", "integration")]) == [
        "tests/test_x.py::s: marked slow but integration; slow tests are e2e"
    ]
