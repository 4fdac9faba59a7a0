"""Which errors of a tracking store a retry may fix, and the one line that says why a
write was refused."""

from __future__ import annotations

from mlflow.exceptions import MlflowException

from ssgan.errors import disk_full_reason, first_line

# MLflow error codes that no retry can fix (a bad value, a deleted run): fail at once.
PERMANENT_ERRORS = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_STATE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}


def is_transient(err: BaseException) -> bool:
    """A locked or unreachable store may recover; a refused value or a full disk will not."""
    if isinstance(err, MlflowException) and disk_full_reason(err) is None:
        return err.error_code not in PERMANENT_ERRORS
    return isinstance(err, OSError) and disk_full_reason(err) is None


def refusal_reason(err: BaseException) -> str:
    """The error's first line; for SQLAlchemy's, the database's own words rather than
    its note that the error "was raised as a result of Query-invoked autoflush"."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    told = [line for line in lines if not line.startswith("(raised as a result of")]
    return (told[0] if told else first_line(err))[:200]
