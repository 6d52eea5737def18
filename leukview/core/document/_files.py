"""Where a review is saved, and what opening a saved one can come to (typed outcomes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..session import fallback_session_path, session_path

__all__ = [
    "RestoreOutcome",
    "RestoreStatus",
    "SaveOutcome",
    "default_sessions_folder",
    "session_candidates",
]


def default_sessions_folder() -> Path:
    """Where sessions go when an image's folder is read-only (the GUI passes the platform's)."""
    return Path.home() / ".leukview" / "sessions"


def session_candidates(image: str | os.PathLike[str], folder: str | os.PathLike[str]) -> list[Path]:
    """Where an image's session may be, in the order they are tried: beside it, then ``folder``."""
    return [session_path(image), fallback_session_path(image, folder)]


class RestoreStatus(Enum):
    """What became of the saved session of an image that was opened."""

    NO_SESSION = "no session"
    RESTORED = "restored"
    #: restored, but the image file changed since (same size): told to the user
    RESTORED_WITH_NOTE = "restored with a note"
    #: made for an image of another size: not restored, the file is kept as it is
    NOT_THIS_IMAGE = "not this image"
    #: not a readable session: moved aside as ``<name>.damaged`` (kept in place when it cannot move)
    DAMAGED = "damaged"
    #: could not be read (permission, I/O): kept untouched and never overwritten
    UNREADABLE = "unreadable"
    #: written by a newer LeukView: kept untouched and never overwritten
    NEWER_VERSION = "newer version"


@dataclass(frozen=True)
class RestoreOutcome:
    """The decision on one session file (or on none).

    Attributes
    ----------
    status : RestoreStatus
    path : Path or None
        The session file decided on.
    reason : str
        Why, for a person (empty when restored cleanly).
    kept_as : Path or None
        Where a damaged file was moved.
    skipped : tuple of RestoreOutcome
        Files tried before the one restored (or after the first problem), each
        with its own status: a damaged file beside the image, say, when the
        session in the fallback folder was restored.
    """

    status: RestoreStatus
    path: Path | None = None
    reason: str = ""
    kept_as: Path | None = None
    skipped: tuple[RestoreOutcome, ...] = ()

    @property
    def restored(self) -> bool:
        return self.status in (RestoreStatus.RESTORED, RestoreStatus.RESTORED_WITH_NOTE)

    def all(self) -> list[RestoreOutcome]:
        """This outcome and every skipped one, in the order they were decided."""
        if self.restored:
            return [*self.skipped, self]
        return [self, *self.skipped]


@dataclass(frozen=True)
class SaveOutcome:
    """Where a session went, or why it could not be saved.

    Attributes
    ----------
    path : Path or None
        The file written; None when nothing was.
    fell_back : bool
        The usual place failed (a read-only folder, a protected file) and the
        fallback folder was used.
    errors : tuple of str
        Why each place tried before failed.
    """

    path: Path | None
    fell_back: bool = False
    errors: tuple[str, ...] = ()

    @property
    def saved(self) -> bool:
        return self.path is not None
