"""Which files LeukView reads: suffixes, and the format from a file's first bytes."""

from __future__ import annotations

import os
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


def open_check(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The path as a Path and its format from the first bytes, or a clear error.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    file : pathlib.Path
        The path.
    fmt : str
        ``'JPEG'``, ``'PNG'``, ``'BMP'`` or ``'TIFF'``, from the content (not the suffix).

    Raises
    ------
    ImageReadError
        Not a path, missing, a folder, not a regular file, empty, unreadable or
        not one of the four formats (the error names what it is instead).
    """
    try:
        file = Path(os.fspath(path))
    except TypeError as exc:
        raise ImageReadError(f"not a file path: {path!r}") from exc
    try:
        if not file.exists():
            raise ImageReadError("no such file", file)
        if file.is_dir():
            raise ImageReadError("is a folder, not an image file", file)
        if not file.is_file():
            raise ImageReadError("is not a regular file", file)
        size = file.stat().st_size
        if size == 0:
            raise ImageReadError("the file is empty (0 bytes)", file)
        with open(file, "rb") as fh:
            head = fh.read(512)
    except PermissionError as exc:
        raise ImageReadError("cannot open the file: permission denied", file) from exc
    except OSError as exc:
        raise ImageReadError(f"cannot open the file: {exc.strerror or exc}", file) from exc
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
