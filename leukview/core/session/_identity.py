"""Where an image's session lives, who acts and when, and which image file a session was made for."""

from __future__ import annotations

import getpass
import hashlib
import os
from datetime import datetime
from pathlib import Path

from ..errors import SessionError

__all__ = [
    "SESSION_SUFFIX",
    "current_user",
    "fallback_session_path",
    "image_fingerprint",
    "now_iso",
    "session_path",
]

SESSION_SUFFIX = ".leukview.json"
_FINGERPRINT_CHUNK = 1 << 20


def session_path(image_path: str | os.PathLike[str]) -> Path:
    """Where the session of an image is saved: beside it, ``<image>.leukview.json``."""
    path = Path(image_path)
    return path.with_name(path.name + SESSION_SUFFIX)


def fallback_session_path(image_path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Session file in ``folder`` for an image whose own folder is read-only.

    The name carries a hash of the image's absolute path, so two images of the
    same name in different folders do not share a session.
    """
    path = Path(image_path).resolve()
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:12]
    return Path(folder) / f"{path.name}-{digest}{SESSION_SUFFIX}"


def current_user() -> str:
    """The operating-system user name (``unknown`` when the system cannot tell)."""
    try:
        return getpass.getuser()
    except Exception:  # getpass raises OSError or KeyError without a passwd entry
        return "unknown"


def now_iso() -> str:
    """Local time with its UTC offset, to the second (ISO 8601)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def image_fingerprint(path: str | os.PathLike[str]) -> str:
    """A quick identity of an image file: SHA-256 of its size, first and last MiB.

    Whole-slide files are gigabytes, so the whole file is not hashed; an edit
    that keeps the size and both ends is not detected.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with path.open("rb") as handle:
            digest.update(handle.read(_FINGERPRINT_CHUNK))
            if size > _FINGERPRINT_CHUNK:
                handle.seek(max(size - _FINGERPRINT_CHUNK, _FINGERPRINT_CHUNK))
                digest.update(handle.read(_FINGERPRINT_CHUNK))
    except OSError as exc:
        raise SessionError(f"cannot read the image to identify it ({exc.strerror or exc})", path) from exc
    return digest.hexdigest()
