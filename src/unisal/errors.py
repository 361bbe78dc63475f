"""Errors that a user can act on; the command line prints their message on one line.

Every one derives from :class:`UnisalError`, so that the command line, the server and the
benchmark catch one class. Each also keeps the built-in base it has always had (``ValueError``
for bad input, ``RuntimeError`` for a run that cannot go on, ``OSError`` for a cache), so that
code catching those still works. This module imports nothing of unisal: any layer may raise.
"""

from __future__ import annotations

from pathlib import Path


class UnisalError(Exception):
    """A problem the user can fix; ``str(error)`` says what and how."""


class ConfigError(UnisalError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class InputFileError(UnisalError, ValueError):
    """A file the user named cannot be read as the format it should be in (encoding, syntax)."""


class DataError(UnisalError, ValueError):
    """The data folder or CSV cannot be turned into a catalogue; the message says why."""


class UnknownClassError(DataError):
    """A label names a class that the catalogue does not have."""


class BadImageError(UnisalError, ValueError):
    """An image file could not be decoded; the message names the file."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {path}: {reason}")


class RunError(UnisalError, RuntimeError):
    """The run cannot start or continue; the message says what to change."""


class WeightsError(UnisalError, RuntimeError):
    """Pretrained weights could not be found, fetched or matched to the backbone."""


class DownloadError(UnisalError, RuntimeError):
    """A download, checksum or extraction failed; the message says what to do."""


class CacheError(UnisalError, OSError):
    """A cache cannot be written or read; the message says what to do."""


class ProjectError(UnisalError, ValueError):
    """The project folder or a request cannot be used; the message says why."""


class HeldOutError(ProjectError):
    """The image is in the held-out test set: the app never labels, resolves, skips or queues it
    (its label is the yardstick that every round is measured by)."""


class ListenError(ProjectError):
    """The server cannot listen on the address it was given (a port in use, a foreign address)."""


class SlideError(DataError):
    """A whole-slide image cannot be opened, read or tiled as asked; the message names it."""
