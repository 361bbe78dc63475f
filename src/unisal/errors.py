"""Errors that a user can act on; the command line prints their message on one line."""

from __future__ import annotations


class RunError(RuntimeError):
    """The run cannot start or continue; the message says what to change."""


class InputFileError(ValueError):
    """A file the user named cannot be read as the format it should be in (encoding, syntax)."""
