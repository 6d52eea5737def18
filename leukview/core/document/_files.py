"""Where a review is saved, and what opening a saved one can come to (typed outcomes)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from ..errors import SessionError
from ..session import (
    ImageMatch,
    Session,
    SessionDamaged,
    SessionNewerVersion,
    SessionNotFound,
    SessionUnreadable,
    fallback_session_path,
    load_session,
    save_session,
    session_path,
)

__all__ = [
    "RestoreOutcome",
    "RestoreStatus",
    "SaveOutcome",
    "SessionFiles",
    "default_sessions_folder",
    "session_candidates",
]


SESSIONS_DIR_ENV = "LEUKVIEW_SESSIONS_DIR"


def default_sessions_folder() -> Path:
    """Where sessions go when an image's folder is read-only: the user's application data.

    The same folder for the viewer and ``leukview report`` (Qt's AppDataLocation for
    organisation and application "LeukView": ``~/.local/share/LeukView/LeukView`` on
    Linux, ``%APPDATA%\\LeukView\\LeukView`` on Windows, ``~/Library/Application
    Support/LeukView/LeukView`` on macOS), then ``sessions``; ``$LEUKVIEW_SESSIONS_DIR``
    overrides it.
    """
    override = os.environ.get(SESSIONS_DIR_ENV)
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "LeukView" / "LeukView" / "sessions"


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


READ_ONLY = "read-only mode: the session is not saved"


class SessionFiles:
    """The session-file policy of one open image: where it is read from and written to.

    Parameters
    ----------
    folder : Path
        Where sessions go when the image's folder is read-only.
    read_only : bool
        Never write or move a file.

    Attributes
    ----------
    protected : set of Path
        Files found this time that must not be overwritten: unreadable, from a
        newer version, another image's, or damaged and unable to move.
    """

    def __init__(self, folder: Path, *, read_only: bool = False) -> None:
        self.folder = folder
        self.read_only = read_only
        self.protected: set[Path] = set()

    def forget(self) -> None:
        """A new image: nothing is protected any more."""
        self.protected = set()

    def candidates(self, image: Path) -> list[Path]:
        return session_candidates(image, self.folder)

    def restore(self, image: Path, size: tuple[int, int]) -> tuple[RestoreOutcome, Session | None]:
        """Decide on each saved session of ``image`` in turn; the first usable one is returned.

        A damaged file is moved aside (``.damaged``); one that is unreadable,
        from a newer LeukView or made for an image of another size is kept
        untouched and protected. The outcome names the file restored (or the
        first problem) and lists the others in ``skipped``.
        """
        problems: list[RestoreOutcome] = []
        for candidate in self.candidates(image):
            try:
                session = load_session(candidate)
            except SessionNotFound:
                continue
            except SessionUnreadable as exc:
                problems.append(self._keep(RestoreStatus.UNREADABLE, candidate, exc.reason))
                continue
            except SessionNewerVersion as exc:
                problems.append(self._keep(RestoreStatus.NEWER_VERSION, candidate, exc.reason))
                continue
            except SessionDamaged as exc:
                problems.append(self._set_aside(candidate, exc.reason))
                continue
            except SessionError as exc:  # any other failure to read: unusable, kept
                problems.append(self._keep(RestoreStatus.UNREADABLE, candidate, exc.reason))
                continue
            match, reason = session.check_image(image, *size)
            if match is ImageMatch.OTHER_SIZE:
                problems.append(self._keep(RestoreStatus.NOT_THIS_IMAGE, candidate, reason))
                continue
            status = RestoreStatus.RESTORED if match is ImageMatch.SAME else RestoreStatus.RESTORED_WITH_NOTE
            return RestoreOutcome(status, candidate, reason, skipped=tuple(problems)), session
        if problems:
            return replace(problems[0], skipped=tuple(problems[1:])), None
        return RestoreOutcome(RestoreStatus.NO_SESSION), None

    def _keep(self, status: RestoreStatus, candidate: Path, reason: str) -> RestoreOutcome:
        self.protected.add(candidate)
        return RestoreOutcome(status, candidate, reason)

    def _set_aside(self, candidate: Path, reason: str) -> RestoreOutcome:
        if self.read_only:
            return self._keep(RestoreStatus.DAMAGED, candidate, reason)
        kept_as = candidate.with_name(candidate.name + ".damaged")
        try:
            os.replace(candidate, kept_as)
        except OSError:  # it stays where it is, and is not overwritten
            return self._keep(RestoreStatus.DAMAGED, candidate, reason)
        return RestoreOutcome(RestoreStatus.DAMAGED, candidate, reason, kept_as=kept_as)

    def save(self, session: Session, image: Path, current: Path | None) -> SaveOutcome:
        """Write ``session`` atomically: to ``current`` (where it was found or saved), else beside
        the image, else in the fallback folder; protected files are skipped."""
        if self.read_only:
            return SaveOutcome(None, errors=(READ_ONLY,))
        beside, fallback = self.candidates(image)
        errors = [f"{p}: kept as it is (not overwritten)" for p in (beside, fallback) if p in self.protected]
        for target in dict.fromkeys([current or beside, beside, fallback]):
            if target in self.protected:
                continue
            try:
                saved = save_session(session, target)
            except SessionError as exc:
                errors.append(exc.reason)
                continue
            return SaveOutcome(saved, fell_back=saved != beside and bool(errors), errors=tuple(errors))
        return SaveOutcome(None, errors=tuple(errors))
