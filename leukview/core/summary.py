"""A batch run's files: which inputs it reads, how its outputs are named, and its tables.

``leukview analyze`` reads files and folders, writes outputs named after each
image's stem, and records one row per image in ``summary.csv`` and one line
per failure in ``failures.csv``. The rules here keep that safe with whatever a
folder holds:

* :func:`find_images` walks folders without following symbolic links to
  folders (no loops, no hang), and hands every file whose name looks like an
  image to the reader, even a symbolic link loop, a named pipe or a link to
  ``/dev/zero``, so that each is reported with its reason instead of being
  missed or called missing.
* :func:`output_stems` gives each image a unique output stem; one too long
  for the file system once a suffix is added is shortened, with a hash of the
  whole stem to keep it unique.
* :class:`SummaryWriter` writes ``summary.csv`` and ``failures.csv`` as the run
  goes: the header first, then each row as one whole line, flushed and
  fsynced when the image is done, so a run that is killed leaves both
  complete up to the last image it finished.
* Cells a spreadsheet would evaluate as a formula (:func:`spreadsheet_safe`)
  and file names that are not UTF-8 (:func:`printable`) are escaped in every
  table.
* summary.csv ends with :data:`CHECK_COLUMNS`: the image's (or the case's)
  :class:`~leukview.core.domain.DomainCheck` and its header's warnings
  (:func:`check_columns`, :func:`image_check_columns`, :func:`case_check_columns`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .atomic import atomic_write_text

if TYPE_CHECKING:
    from .case import Case
    from .domain import DomainCheck

__all__ = [
    "CHECK_COLUMNS",
    "FAILURES_FILE",
    "FORMULA_PREFIXES",
    "MAX_STEM_BYTES",
    "SUMMARY_FILE",
    "InputScan",
    "SummaryWriter",
    "csv_line",
    "find_images",
    "case_check_columns",
    "check_columns",
    "image_check_columns",
    "image_warnings",
    "output_stems",
    "printable",
    "short_stem",
    "spreadsheet_safe",
]

SUMMARY_FILE = "summary.csv"
FAILURES_FILE = "failures.csv"
#: Columns of failures.csv.
FAILURE_COLUMNS = ("image", "reason")
#: A cell starting with one of these is a formula to a spreadsheet (OWASP's list).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: The longest output stem, in bytes: a file name may have 255, and outputs add a suffix
#: (``.overlay.png``, ``-2``...).
MAX_STEM_BYTES = 200
#: summary.csv's last columns, after the model columns: the domain check and the header's warnings.
CHECK_COLUMNS = ("domain_score", "domain_warning", "warnings")
#: How the warnings of one row are joined.
WARNINGS_SEPARATOR = "; "

_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# ---------------------------------------------------------------- cells and names


def printable(name: str | os.PathLike[str]) -> str:
    """A path or name as text any output can hold.

    A file name that is not UTF-8 comes from :func:`os.fsdecode` with lone
    surrogates, which UTF-8 cannot encode (writing it fails with
    :class:`UnicodeEncodeError`); its undecodable bytes are written as
    ``\\xNN`` escapes instead (``caf\\xe9.jpg``). Any other name is returned
    unchanged.
    """
    text = os.fspath(name)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def spreadsheet_safe(value: object) -> object:
    """A CSV cell that no spreadsheet evaluates.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    is a formula to Excel, LibreOffice and Google Sheets (a file named
    ``=HYPERLINK(...)`` would become a link, ``=1+1`` a sum); it gets a
    leading ``'`` (OWASP's rule), which spreadsheets show as text. Numbers
    (``int``, ``float``, and text that is a plain number such as ``-0.25``)
    are left as they are, as is other text; text that is not UTF-8 is made
    :func:`printable`.
    """
    if not isinstance(value, str):
        return value
    value = printable(value)
    if value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_line(values: Iterable[object]) -> str:
    """One CSV line (``\\n`` ended) of :func:`spreadsheet_safe` cells."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([spreadsheet_safe(v) for v in values])
    return buffer.getvalue()


def short_stem(stem: str, max_bytes: int = MAX_STEM_BYTES) -> str:
    """``stem``, or when its file-system bytes pass ``max_bytes``, its start and a hash.

    The hash (10 hex digits of the SHA-256 of the whole stem) keeps two long
    stems that start alike apart; the cut falls between characters.
    """
    raw = os.fsencode(stem)
    if len(raw) <= max_bytes:
        return stem
    digest = hashlib.sha256(raw).hexdigest()[:10]
    budget = max_bytes - len(digest) - 1
    kept, used = [], 0
    for char in stem:
        size = len(os.fsencode(char))
        if used + size > budget:
            break
        kept.append(char)
        used += size
    return "".join(kept) + "-" + digest


def output_stems(images: Iterable[Path], max_bytes: int = MAX_STEM_BYTES) -> dict[Path, str]:
    """A unique output stem per image (``name``, ``name-2``, ... when stems collide).

    Stems too long for a file name once a suffix is added are shortened
    (:func:`short_stem`).
    """
    stems: dict[Path, str] = {}
    used: set[str] = set()
    for path in images:
        base = short_stem(path.stem, max_bytes)
        stem, n = base, 1
        while stem in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        stems[path] = stem
    return stems


# ---------------------------------------------------------------- inputs


@dataclass
class InputScan:
    """What :func:`find_images` found.

    Attributes
    ----------
    images : list of Path
        Files to read, each once: named, or found in a folder by their name
        (they may still be links, pipes or devices: the reader says so).
    failures : list of (str, str)
        ``(path, reason)`` for what was named but is not there, a folder that
        cannot be read, a folder named like an image that holds none.
    notes : list of str
        Sentences for a person (a symbolic link to a folder, not followed).
    """

    images: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_images(
    paths: Sequence[str | os.PathLike[str]], wanted: Callable[[str], bool] | None = None
) -> InputScan:
    """The image files named in ``paths`` or found in the folders among them.

    Parameters
    ----------
    paths : sequence of str or path-like
        Files and folders. A folder is searched recursively; symbolic links to
        folders inside it are not followed (a named one is). A file named
        here is always taken, whatever its name or type.
    wanted : callable, optional
        Whether a file name found in a folder is an image to read;
        :func:`leukview.core.io.is_supported` by default. Anything with such a
        name is taken: a symbolic link loop, a broken link, a named pipe, a
        device, so that the reader names what it is.

    Returns
    -------
    InputScan
        The same file named twice (or reached by two links) is listed once.
    """
    if wanted is None:
        from .io import is_supported

        wanted = is_supported
    scan = InputScan()
    found: list[Path] = []
    for raw in paths:
        path = Path(os.fsdecode(os.fspath(raw)))
        if os.path.isdir(path):  # follows a named link
            found.extend(_walk(path, wanted, scan))
            continue
        try:
            os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            scan.failures.append((printable(path), "no such file or folder"))
            continue
        except OSError:
            pass  # a name too long, a folder we may not enter: the reader says which
        found.append(path)
    seen: set[str] = set()
    for path in found:
        key = os.path.normcase(os.path.realpath(path))  # no error on a link loop
        if key not in seen:
            seen.add(key)
            scan.images.append(path)
    return scan


def _walk(root: Path, wanted: Callable[[str], bool], scan: InputScan) -> list[Path]:
    """Files under ``root`` with a wanted name, sorted; links to folders are not followed."""
    found: list[Path] = []
    named_like_images: list[Path] = []
    stack = [root]
    while stack:  # not recursive: a deep tree cannot exhaust the stack
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            scan.failures.append((printable(folder), f"cannot read the folder ({exc.strerror or exc})"))
            continue
        subfolders = []
        for entry in entries:
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
                is_link = entry.is_symlink()
            except OSError:
                is_folder = is_link = False
            if is_folder:
                subfolders.append(Path(entry.path))
                if wanted(entry.name):
                    named_like_images.append(Path(entry.path))
            elif is_link and os.path.isdir(entry.path):
                scan.notes.append(f"{printable(entry.path)}: a symbolic link to a folder, not followed")
            elif wanted(entry.name):
                found.append(Path(entry.path))
        stack.extend(reversed(subfolders))
    for folder in named_like_images:
        if not any(folder in p.parents for p in found):
            scan.failures.append((printable(folder), "is a folder, not an image file"))
    return sorted(found)


# ---------------------------------------------------------------- the checks of a row


def check_columns(domain: DomainCheck | None, warnings: Iterable[str] = ()) -> dict[str, object]:
    """The :data:`CHECK_COLUMNS` of one summary.csv row.

    Parameters
    ----------
    domain : DomainCheck or None
        The image's or the case's check, as recorded (``Analysis.domain``,
        ``Case.domain()``, a slide's); None when no open-set model ran.
    warnings : iterable of str
        Problems of the file's header (``ImageInfo.warnings``), for a person.

    Returns
    -------
    dict
        ``domain_score`` (rounded to 2 decimals, empty without scored cells),
        ``domain_warning`` (:data:`leukview.core.domain.WARNING` or empty) and
        ``warnings`` (joined with ``"; "``, empty for a sound file).
    """
    score = None if domain is None else domain.score
    return {
        "domain_score": "" if score is None else round(float(score), 2),
        "domain_warning": "" if domain is None or domain.warning is None else domain.warning,
        "warnings": WARNINGS_SEPARATOR.join(w for w in warnings if w),
    }


def image_warnings(path: str | os.PathLike[str], *, slide: bool = False) -> tuple[str, ...]:
    """The warnings of a file's header (``ImageInfo.warnings``; a slide's ``Slide.warnings``).

    Only the header is read again. A file that can no longer be read gives none:
    its row already says what happened to it.
    """
    from .errors import LeukViewError

    try:
        if slide:
            from .io import open_slide

            with open_slide(path) as opened:
                return tuple(opened.warnings)
        from .io import image_info

        return tuple(image_info(path).warnings)
    except (LeukViewError, OSError, ValueError):
        return ()


def image_check_columns(
    path: str | os.PathLike[str], domain: DomainCheck | None, *, slide: bool = False
) -> dict[str, object]:
    """:func:`check_columns` of an image row: its check and its header's warnings."""
    return check_columns(domain, image_warnings(path, slide=slide))


def case_check_columns(case: Case) -> dict[str, object]:
    """:func:`check_columns` of the ``case:NAME`` row: the case's pooled check (:meth:`Case.domain`).

    Its warnings are every image's, each after the image's id (``f1: ...``).
    """
    warnings = [
        f"{image.id}: {warning}"
        for image in case.images
        if image.path
        for warning in image_warnings(image.path, slide=image.kind == "slide")
    ]
    return check_columns(case.domain(), warnings)


# ---------------------------------------------------------------- the run's tables


class SummaryWriter:
    """``summary.csv`` and ``failures.csv`` of a run, written as it goes.

    Both files are created (atomically, replacing those of an earlier run)
    with their header when the writer is made; then every :meth:`add` and
    :meth:`fail` appends whole lines and fsyncs them. A run that is killed
    therefore leaves valid CSV with one row per image it finished. New files
    get the user's umask (as :func:`open`), replaced ones keep their mode.

    Parameters
    ----------
    folder : path
        The output folder (created).
    columns : sequence of str
        summary.csv's header; a row's missing columns are empty, extra keys
        are ignored. ``image`` and ``status`` should be among them.

    Attributes
    ----------
    rows : list of dict
        Every summary row written, in order (for a final :meth:`rewrite`).
    failures : list of (str, str)
        Every ``(image, reason)`` written to failures.csv.
    """

    def __init__(self, folder: str | os.PathLike[str], columns: Sequence[str]) -> None:
        self.folder = Path(folder)
        self.columns = list(columns)
        self.rows: list[dict[str, object]] = []
        self.failures: list[tuple[str, str]] = []
        self.summary_path = self.folder / SUMMARY_FILE
        self.failures_path = self.folder / FAILURES_FILE
        atomic_write_text(self.summary_path, csv_line(self.columns))
        atomic_write_text(self.failures_path, csv_line(FAILURE_COLUMNS))
        self._summary: int | None = _open_append(self.summary_path)
        try:
            self._failures: int | None = _open_append(self.failures_path)
        except BaseException:
            os.close(self._summary)
            raise

    def add(self, row: Mapping[str, object]) -> None:
        """Append one image's row to summary.csv (and fsync it)."""
        row = {key: row[key] for key in self.columns if key in row}
        if "image" in row:
            row["image"] = printable(str(row["image"]))
        self.rows.append(row)
        _append(self._summary, csv_line(row.get(key, "") for key in self.columns))

    def fail(self, image: str | os.PathLike[str], reason: str, status: str | None = None) -> None:
        """Record a failed image: a row in summary.csv and a line in failures.csv.

        Parameters
        ----------
        image : str or path
            As given or found (made :func:`printable`).
        reason : str
            Why, for a person.
        status : str, optional
            summary.csv's status; ``error: <reason>`` by default.
        """
        name = printable(image)
        self.add({"image": name, "status": status or f"error: {reason}"})
        self.failures.append((name, reason))
        _append(self._failures, csv_line((name, reason)))

    def rewrite(self, rows: Iterable[Mapping[str, object]] | None = None) -> Path:
        """Replace summary.csv atomically with the header and ``rows`` (default: :attr:`rows`).

        For a final summary that adds rows known only at the end; the file is
        never half written. Later :meth:`add` calls append to the new file.
        """
        rows = list(self.rows if rows is None else rows)
        text = csv_line(self.columns) + "".join(
            csv_line(row.get(key, "") for key in self.columns) for row in rows
        )
        if self._summary is not None:
            os.close(self._summary)
            self._summary = None
        atomic_write_text(self.summary_path, text)
        self._summary = _open_append(self.summary_path)
        return self.summary_path

    def close(self) -> None:
        """Close both files (they are complete after every row already)."""
        for name in ("_summary", "_failures"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open_append(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags)


def _append(fd: int | None, line: str) -> None:
    """Write ``line`` whole (one write call for a line of any usual size), then fsync."""
    if fd is None:
        raise ValueError("the summary is closed")
    data = line.encode("utf-8", "backslashreplace")
    while data:
        written = os.write(fd, data)
        data = data[written:]
    os.fsync(fd)
