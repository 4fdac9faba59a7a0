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


def test_a_run_without_a_git_checkout_records_the_installed_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wheel in a virtual environment has no checkout: the package metadata's version is
    what names the code that ran."""
    import importlib.metadata

    from ssgan.tracking import provenance

    monkeypatch.setattr(provenance, "git_state", lambda start=None: {})
    recorded = provenance.run_context_tags()
    assert recorded[tags.SSGAN_VERSION_TAG] == importlib.metadata.version("ssgan")
    assert "mlflow.source.git.commit" not in recorded or recorded["mlflow.source.git.commit"]
