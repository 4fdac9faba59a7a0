"""An error's first line: what handlers quote when they turn an error into one line."""

from __future__ import annotations

import pytest

from ssgan.errors import ConfigError, first_line

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (ValueError("bad value"), "bad value"),
        (ValueError("bad value\n  detail one\n  detail two"), "bad value"),
        (ValueError("\n\n  indented first  \nsecond"), "indented first"),
        (RuntimeError("line\r\nnext"), "line"),
        (ValueError(""), "ValueError"),
        (ValueError("   \n\t\n"), "ValueError"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (OSError(), "OSError"),
        (ConfigError(), "ConfigError"),
    ],
)
def test_first_line(err: BaseException, expected: str) -> None:
    assert first_line(err) == expected


def test_blank_message_names_the_error_not_its_cause() -> None:
    """A blank error raised from another is named itself: the cause is a different error,
    and the chain that printed it says so."""
    try:
        try:
            raise OSError("No space left on device")
        except OSError as cause:
            raise ConfigError("") from cause
    except ConfigError as err:
        assert first_line(err) == "ConfigError"


def test_non_string_args_are_read_as_text() -> None:
    assert first_line(KeyError("missing")) == "'missing'"
    assert first_line(ValueError(3, "two")) == "(3, 'two')"
