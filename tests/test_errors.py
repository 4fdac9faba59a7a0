"""An error's first line: what handlers quote when they turn an error into one line."""

from __future__ import annotations

import pytest

from ssgan.errors import ConfigError, first_line, tf_reason

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


def test_a_lost_workers_tensorflow_error_is_quoted_by_its_reason() -> None:
    """What a multi-worker job's surviving worker gets when its peer dies mid-step (its
    chief's disk filled): the first line alone made 'a worker of this job was lost
    (Graph execution error:)', which says nothing."""
    message = (
        "Graph execution error:\n\nDetected at node while/CollectiveReduceV2 defined at (most "
        'recent call last):\n  File "<frozen runpy>", line 198, in _run_module_as_main\n\n'
        '  File "/x/ssgan/models/gan.py", line 176, in _steps_on_device\n\n'
        "Collective ops is aborted by: Socket closed\nAdditional GRPC error information from "
        "remote target /job:worker/replica:0/task:0 while calling /tensorflow.WorkerService/"
        "RecvBuf:\n\t [[{{node while/CollectiveReduceV2}}]] [Op:__inference__steps_on_device]"
    )
    assert tf_reason(message) == "Collective ops is aborted by: Socket closed"
    assert tf_reason("Graph execution error:\n\n[[{{node x}}]]") == ""
    assert tf_reason("x" * 400) == "x" * 300


def test_an_error_raised_again_while_handled_is_read_once() -> None:
    """The same exception object raised inside its own handling is its own context (a
    retry loop with one stand-in error): reading its chain must end."""
    from ssgan.errors import disk_full_reason

    err = OSError("the store says no")
    err.__context__ = err  # the cycle a re-raise inside its own handler leaves
    assert disk_full_reason(err) is None
