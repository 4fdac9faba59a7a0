"""Errors that are the user's to fix. Entry points print them as one line, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from a user: a config value, a file, a run id. The message is one line
    saying what was wrong, which key or file, and what is allowed."""


class ConfigError(UserError):
    """A config value that cannot work."""


class DataError(UserError):
    """A data file or data setting that cannot be used."""
