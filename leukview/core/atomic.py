"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file LeukView writes (cells.json, summary.csv, overlays, sessions,
exports, reports) goes through a temporary file in the target's folder that is
flushed, fsynced and then renamed over the target, so a crash, a kill or a full
disk leaves the previous file (or none) under the final name.

* **Short temporary names.** The temporary file is ``.lv-<16 hex>.tmp``
  whatever the target's name, so a target whose name is near the file
  system's 255-byte limit can still be written.
* **Permissions.** A new file gets what :func:`open` would create: ``0o666``
  less the user's umask (and the folder's default ACL), so a shared lab folder
  stays shared; a file that is replaced keeps its mode.
* **Stale temporary files.** A write killed between creating its temporary
  file and renaming it leaves the temporary file behind; each write removes
  this program's own temporary files (``.lv-<16 hex>.tmp``, and the older
  ``.<name>.<8 chars>.tmp`` of the same target) older than
  :data:`STALE_TEMP_SECONDS` from the folder it writes in.
* **Text** is UTF-8; a character UTF-8 cannot hold (a lone surrogate, which is
  how a file name that is not UTF-8 comes out of :func:`os.fsdecode`) is
  written as its ``\\udcXX`` escape, which JSON reads back as the same
  character, instead of failing the write.
* **JSON** (:func:`json_text`, :func:`atomic_write_json`) never contains
  ``NaN`` or ``Infinity``, which are not JSON: a non-finite number is a
  :class:`~leukview.core.errors.LeukViewError` naming where it is.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import LeukViewError

__all__ = [
    "STALE_TEMP_SECONDS",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "clean_stale_temps",
    "is_own_temp",
    "json_text",
    "new_file_mode",
]

TEMP_PREFIX = ".lv-"
TEMP_SUFFIX = ".tmp"
#: A temporary file of ours older than this (seconds since its last change) is an orphan.
STALE_TEMP_SECONDS = 3600.0

_TEMP_NAME = re.compile(r"\.lv-[0-9a-f]{16}\.tmp")
# what tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") made in earlier versions
_OLD_RANDOM = re.compile(r"[a-z0-9_]{8}\.tmp")


def is_own_temp(name: str, target: str | None = None) -> bool:
    """Whether a file name is one of this program's temporary files.

    Parameters
    ----------
    name : str
        A file name (no folder).
    target : str, optional
        The name of the file being written: earlier versions named their
        temporary files after it (``.<target>.<8 chars>.tmp``), and those count too.
    """
    if _TEMP_NAME.fullmatch(name):
        return True
    if target is not None:
        prefix = f".{target}."
        return name.startswith(prefix) and bool(_OLD_RANDOM.fullmatch(name[len(prefix) :]))
    return False


def clean_stale_temps(
    folder: str | os.PathLike[str], target: str | None = None, *, older_than: float = STALE_TEMP_SECONDS
) -> list[Path]:
    """Remove this program's temporary files in ``folder`` last changed over ``older_than`` s ago.

    Best effort: a file that cannot be looked at or removed is left. Only
    regular files matching :func:`is_own_temp` are touched (never a link).

    Returns
    -------
    list of Path
        The files removed.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_own_temp(entry.name, target):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and now - st.st_mtime > older_than:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def new_file_mode() -> int:
    """The mode :func:`open` gives a new file: ``0o666`` less the process's umask.

    Reading the umask means setting it; it is set back at once. The writers
    below do not need this (they let the kernel apply the umask), it is for
    callers and tests that want to know.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _create_temp(folder: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"
        try:
            # 0o666: the kernel applies the umask (and a default ACL), as open() would
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


def _existing_mode(path: Path) -> int | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def _fsync_folder(folder: Path) -> None:
    # the rename is durable once the folder is synced (POSIX; Windows cannot open folders)
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    The temporary file (``.lv-<random>.tmp``) is flushed and fsynced before
    :func:`os.replace` swaps it in, so a crash or a full disk leaves the
    previous file intact. A new file gets ``0o666`` less the umask, a
    replaced one keeps its mode. Stale temporary files of earlier killed
    writes in the folder are removed first (:func:`clean_stale_temps`).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        When the folder cannot be created or written, or the disk is full;
        the temporary file is removed.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(folder, path.name)
    mode = _existing_mode(path)
    fd, tmp = _create_temp(folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if mode is not None and not hasattr(os, "fchmod"):
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8, newline as given).

    A lone surrogate (from a file name that is not UTF-8) is written as its
    ``\\udcXX`` escape instead of failing.
    """
    return atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


def json_text(obj: Any, *, compact: bool = True, ensure_ascii: bool = False, **kwargs: Any) -> str:
    """``obj`` as JSON text, refusing ``NaN`` and ``Infinity``.

    Parameters
    ----------
    obj
        What :func:`json.dumps` takes.
    compact : bool
        No spaces after separators (the default); False: as :func:`json.dumps`.
    ensure_ascii : bool
        As :func:`json.dumps`.
    **kwargs
        Passed on (``indent``, ``sort_keys``...).

    Raises
    ------
    LeukViewError
        A float in ``obj`` is not finite; the reason names where it is
        (``cells[3].measurements.solidity``).
    """
    if compact and "separators" not in kwargs:
        kwargs["separators"] = (",", ":")
    try:
        return json.dumps(obj, allow_nan=False, ensure_ascii=ensure_ascii, **kwargs)
    except ValueError as exc:
        where = next(_non_finite(obj, ""), None)
        if where is None:
            raise
        raise LeukViewError(
            f"a value is not a finite number ({where[0] or 'the value'} = {where[1]!r}); "
            "JSON has no NaN or Infinity, so nothing was written"
        ) from exc


def _non_finite(obj: Any, where: str) -> Iterator[tuple[str, float]]:
    """(path, value) of each non-finite float in ``obj``, depth first."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            yield where, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _non_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _non_finite(value, f"{where}[{i}]")


def atomic_write_json(path: str | os.PathLike[str], obj: Any, **kwargs: Any) -> Path:
    """Write :func:`json_text` of ``obj`` atomically (:func:`atomic_write_text`).

    Raises
    ------
    LeukViewError
        A non-finite number in ``obj`` (nothing is written).
    OSError
        As :func:`atomic_write_bytes`.
    """
    return atomic_write_text(path, json_text(obj, **kwargs))
