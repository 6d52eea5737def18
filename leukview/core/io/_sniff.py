"""Which files LeukView reads: suffixes, and the format from a file's first bytes."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import ImageReadError

__all__ = ["SUPPORTED_SUFFIXES", "is_supported", "open_check"]

#: File suffixes (lower case) that :func:`is_supported` accepts.
SUPPORTED_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_SUFFIX_FORMAT = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
# Formats people try to open, named in the error instead of "unrecognised".
_OTHER_MAGIC = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"8BPS", "a Photoshop document"),
)


def is_supported(path: str | os.PathLike[str]) -> bool:
    """Whether a file name looks like an image LeukView reads (by suffix only).

    Parameters
    ----------
    path : str or path-like
        A file name; the file is not opened.

    Returns
    -------
    bool
        True when the lower-cased suffix is in :data:`SUPPORTED_SUFFIXES` and
        the name is not a macOS resource fork (``._name.jpg``).
    """
    name = Path(path).name
    return not name.startswith("._") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES


def open_check(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> tuple[Path, str]:
    """The path as a Path and its format from the first bytes, or a clear error.

    The file's type is checked with :func:`os.stat` before it is opened, and it
    is opened non-blocking and checked again, so a named pipe, a device (a link
    to ``/dev/zero``) or a socket is named and never read, and nothing hangs.

    Parameters
    ----------
    path : str, bytes or path-like
        The file to read; a bytes path (a file name that is not UTF-8) is
        decoded as the operating system does (:func:`os.fsdecode`).

    Returns
    -------
    file : pathlib.Path
        The path.
    fmt : str
        ``'JPEG'``, ``'PNG'``, ``'BMP'`` or ``'TIFF'``, from the content (not the suffix).

    Raises
    ------
    ImageReadError
        Not a path, missing, a broken symbolic link or a loop of them, a
        folder, a named pipe, a device or a socket, empty, unreadable, a name
        too long for the system, or not one of the four formats (the error
        names what it is instead).
    """
    try:
        file = Path(os.fsdecode(os.fspath(path)))
    except TypeError as exc:
        raise ImageReadError(f"not a file path: {path!r}") from exc
    try:
        st = os.stat(file)
    except OSError as exc:
        raise ImageReadError(_stat_failure(file, exc), file) from exc
    _check_kind(file, st.st_mode)
    if st.st_size == 0:
        raise ImageReadError("the file is empty (0 bytes)", file)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(file, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except PermissionError as exc:
        raise ImageReadError("cannot open the file: permission denied", file) from exc
    except OSError as exc:
        raise ImageReadError(_stat_failure(file, exc), file) from exc
    try:
        _check_kind(file, os.fstat(fd).st_mode)  # swapped for a pipe since the stat?
        head = os.read(fd, 512)
    except OSError as exc:
        raise ImageReadError(f"cannot read the file: {exc.strerror or exc}", file) from exc
    finally:
        os.close(fd)
    fmt = _sniff(head)
    if fmt is None:
        what = _describe_unknown(head)
        expected = _SUFFIX_FORMAT.get(file.suffix.lower())
        if expected:
            raise ImageReadError(f"not a {expected} file: it is {what}", file)
        raise ImageReadError(
            f"unsupported format: the file is {what}; LeukView reads JPEG, PNG, BMP and TIFF",
            file,
        )
    return file, fmt


def _stat_failure(file: Path, exc: OSError) -> str:
    """Why a path cannot be looked at, for a person."""
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop: the link points, directly or through others, to itself"
    if exc.errno == errno.ENAMETOOLONG:
        return "cannot open the file: its name is too long for the file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot open the file: permission denied"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        if os.path.islink(file):
            try:
                target = os.readlink(file)
            except OSError:
                target = "?"
            return f"is a broken symbolic link: its target {target!r} does not exist"
        return "no such file"
    return f"cannot open the file: {exc.strerror or exc}"


def _check_kind(file: Path, mode: int) -> None:
    """ImageReadError unless ``mode`` is a regular file's, naming what it is instead."""
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise ImageReadError("is a folder, not an image file", file)
    kinds = (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device (such as /dev/zero)"),
        (stat.S_ISBLK, "a block device (a disk)"),
        (stat.S_ISSOCK, "a socket"),
    )
    what = next((name for test, name in kinds if test(mode)), "a special file")
    raise ImageReadError(f"is {what}, not a regular file: it is not read", file)


def _sniff(head: bytes) -> str | None:
    if head[:4] in _TIFF_MAGIC:
        return "TIFF"
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:2] == b"BM" and len(head) >= 26:
        return "BMP"
    return None


def _describe_unknown(head: bytes) -> str:
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            return what
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIF/AVIF image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "text, not image data"
    return "in an unrecognised format"
