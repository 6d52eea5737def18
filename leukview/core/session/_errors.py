"""What can go wrong with a session file, told apart by type (a caller decides on the kind, not the text)."""

from __future__ import annotations

from enum import Enum

from ..errors import SessionError

__all__ = ["ImageMatch", "SessionDamaged", "SessionNewerVersion", "SessionNotFound", "SessionUnreadable"]


class SessionNotFound(SessionError):
    """There is no session file."""


class SessionUnreadable(SessionError):
    """The file exists but cannot be read (permission, I/O error): it must be kept as it is."""


class SessionNewerVersion(SessionError):
    """A newer LeukView wrote the file: it must be kept for that version, not overwritten."""


class SessionDamaged(SessionError):
    """The file is not a readable session (not JSON, not a session, damaged content)."""


class ImageMatch(Enum):
    """Whether a session belongs to the image it is opened with (:meth:`Session.check_image`)."""

    SAME = "same"
    CHANGED = "changed"  # same size, different file content: the review still fits the pixels' grid
    OTHER_SIZE = "other size"  # another image: the cells would not fit
    UNREADABLE = "unreadable"  # the image could not be read to compare
