"""A tiny event emitter for Qt-free models (napari's evented model, without Qt).

A model owns :class:`Event` objects; views :meth:`~Event.connect` callbacks
to them and the model :meth:`~Event.emit` s when something changed. Callbacks
run at once, in the order they were connected, on the emitting thread; an
exception in one propagates to the emitter (a bug shows, it is not swallowed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Event"]

Callback = Callable[..., Any]


class Event:
    """One kind of change, and the callbacks told about it.

    Parameters
    ----------
    name : str
        For messages and debugging (``cell_changed``).

    Examples
    --------
    >>> changed = Event("changed")
    >>> seen = []
    >>> _ = changed.connect(seen.append)
    >>> changed.emit(7)
    >>> seen
    [7]
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callback] = []
        self._blocked = 0

    def connect(self, callback: Callback) -> Callback:
        """Call ``callback(*args)`` on every :meth:`emit`; returns it (usable as a decorator)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback | None = None) -> None:
        """Forget one callback (no error if it was not connected), or all with None."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        for callback in list(self._callbacks):  # a callback may disconnect itself
            callback(*args)

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """Emit nothing inside the ``with`` block (for a batch that emits once at its end)."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __len__(self) -> int:
        return len(self._callbacks)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} callbacks)"
