"""The one exception family that LeukView raises for bad input."""

from __future__ import annotations

import os


class LeukViewError(Exception):
    """Base of every error LeukView reports to a user.

    The message is written for a person: it names the file (when there is
    one) and says what is wrong, so the CLI and the GUI can show it as is,
    without a traceback.
    """

    def __init__(self, reason: str, path: str | os.PathLike[str] | None = None) -> None:
        self.reason = reason
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class ImageReadError(LeukViewError):
    """An image could not be read (missing, corrupt, unsupported, too large)."""


class ModelError(LeukViewError):
    """A model or its sidecar is missing, damaged or inconsistent."""


class SessionError(LeukViewError):
    """A saved review session could not be read or written."""
