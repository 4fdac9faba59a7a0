"""The ``ssgan.*`` MLflow tag names: one name per tag, all in the project's namespace."""

from __future__ import annotations

import pytest

from ssgan.tracking import tags

pytestmark = pytest.mark.unit


def _tag_names() -> dict[str, str]:
    return {name: value for name, value in vars(tags).items() if name.isupper()}


def test_every_tag_is_in_the_ssgan_namespace() -> None:
    names = _tag_names()
    assert names
    assert all(value.startswith("ssgan.") for value in names.values())


def test_no_two_names_share_a_tag() -> None:
    values = list(_tag_names().values())
    assert len(values) == len(set(values))
    prefix = tags.BEST_PARAM_PREFIX
    assert not [v for v in values if v != prefix and v.startswith(prefix)]
