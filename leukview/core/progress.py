"""Progress reports and cancellation, shared by every long-running step of the core.

A long step (segmenting and classifying an image, running a model over many
cells) takes two optional callables from its caller:

* ``progress(fraction, message)`` (:data:`ProgressCallback`), told how far
  the step has got (``fraction`` in [0, 1]) and what it is doing;
* ``should_cancel()`` (:data:`CancelCheck`), polled between units of work; a
  True answer stops the step with :class:`AnalysisCancelled`, before anything
  the caller sees has changed.

:func:`checkpoint` does both at a point where stopping is safe, and
:func:`scaled` maps a sub-step's [0, 1] onto its share of the whole, so that
nested steps report one continuous fraction.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import LeukViewError

__all__ = ["AnalysisCancelled", "CancelCheck", "ProgressCallback", "checkpoint", "scaled"]

ProgressCallback = Callable[[float, str], None]
"""``progress(fraction, message)``: ``fraction`` in [0, 1], ``message`` for a person."""

CancelCheck = Callable[[], bool]
"""``should_cancel()``: True asks the running step to stop."""


class AnalysisCancelled(LeukViewError):
    """The user cancelled an analysis; nothing was changed."""

    def __init__(self) -> None:
        super().__init__("analysis cancelled")


def checkpoint(
    progress: ProgressCallback | None,
    should_cancel: CancelCheck | None,
    fraction: float,
    message: str,
) -> None:
    """Stop here if cancellation was asked for, else report progress.

    Call it where stopping leaves nothing half-done, before the next unit of work.

    Parameters
    ----------
    progress : callable(fraction, message), optional
    should_cancel : callable() -> bool, optional
    fraction : float
        How much of the work is done, in [0, 1].
    message : str
        What comes next, for a person.

    Raises
    ------
    AnalysisCancelled
        If ``should_cancel()`` returns True (``progress`` is then not called).
    """
    if should_cancel is not None and should_cancel():
        raise AnalysisCancelled()
    if progress is not None:
        progress(fraction, message)


def scaled(progress: ProgressCallback | None, start: float, stop: float) -> ProgressCallback | None:
    """A callback that reports a sub-step's [0, 1] as [start, stop] of the whole.

    Parameters
    ----------
    progress : callable(fraction, message), optional
        The whole step's callback; None gives None.
    start, stop : float
        The sub-step's share of the whole, ``0 <= start <= stop <= 1``.

    Returns
    -------
    callable(fraction, message) or None
    """
    if progress is None:
        return None
    outer = progress

    def report(fraction: float, message: str) -> None:
        outer(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return report
