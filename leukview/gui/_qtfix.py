"""A guard against a reference-counting bug of PySide6 6.12 on Python 3.11.

PySide6 6.12.0 releases one reference to ``None`` each time C++ calls a
Python override that returns None (every ``paint``, ``paintEvent``,
``QRunnable.run``) and one to ``True`` each time a signal is emitted from
Python. Python 3.12+ makes these singletons immortal, so nothing happens
there; on Python 3.11 their counts reach zero after a few thousand repaints
and the interpreter aborts ("deallocating None"). Older PySide6 (6.11.3 was
checked) does not have the bug.

When the bad combination is found, the three singletons get a reference
count so large that no session can exhaust it: in effect the immortality
that Python 3.12 gives them.
"""

from __future__ import annotations

import ctypes
import sys

_BALLAST = 1 << 40


def needs_guard(pyside_version: str, python: tuple[int, int] = sys.version_info[:2]) -> bool:
    """True for PySide6 >= 6.12 on a Python whose None/True/False are not immortal (< 3.12)."""
    try:
        major, minor = (int(p) for p in pyside_version.split(".")[:2])
    except ValueError:
        return False
    return python < (3, 12) and (major, minor) >= (6, 12)


def guard_singletons() -> bool:
    """Apply the guard when needed; returns whether it was applied."""
    import PySide6

    if not needs_guard(PySide6.__version__) or sys.implementation.name != "cpython":
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every object in a release build of CPython 3.11
        ctypes.c_ssize_t.from_address(id(obj)).value += _BALLAST
    return True


GUARDED = guard_singletons()
