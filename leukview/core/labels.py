"""Where cell labels go: a greedy placement in which no two labels overlap and none leaves the view.

The viewer (in screen pixels, at every zoom) and the report's snapshot (in
the snapshot's pixels) both place their labels with :func:`place_labels`:
labels are taken in priority order (the selected cell, then flagged cells,
then the rest in review order); each tries a few positions around its cell
(above, below, beside), shifted inside the bounds so that it is never cut at
an edge, and takes the first that keeps a gap to every label already placed.
A label may offer a smaller form (a marker: the class's abbreviation) tried
when the full text fits nowhere; a label that fits nowhere is left out, so
labels give way instead of covering each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["LabelRequest", "PlacedLabel", "Rect", "place_labels", "rects_overlap"]

Rect = tuple[float, float, float, float]
"""(x0, y0, x1, y1), x0 <= x1 and y0 <= y1."""


@dataclass(frozen=True)
class LabelRequest:
    """One label to place.

    Attributes
    ----------
    key : int
        Returned with its placement (a cell id).
    anchor : Rect
        The cell's box the label belongs beside.
    sizes : sequence of (width, height)
        The label's forms, the preferred first (full text, then a marker,
        which is tried on its cell first).
    priority : float
        Lower goes first.
    """

    key: int
    anchor: Rect
    sizes: Sequence[tuple[float, float]]
    priority: float = 0.0


@dataclass(frozen=True)
class PlacedLabel:
    """Where a label went: its rectangle and which of its sizes it took."""

    key: int
    rect: Rect
    form: int


def rects_overlap(a: Rect, b: Rect, gap: float = 0.0) -> bool:
    """Whether two rectangles come closer than ``gap`` (touching counts when gap > 0)."""
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _candidates(anchor: Rect, width: float, height: float, pad: float) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = anchor
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return [
        (x0, y0 - height - pad),  # above, left-aligned (the usual place)
        (x1 - width, y0 - height - pad),  # above, right-aligned
        (cx - width / 2.0, y0 - height - pad),  # above, centred
        (x0, y1 + pad),  # below
        (x1 + pad, cy - height / 2.0),  # right
        (x0 - width - pad, cy - height / 2.0),  # left
        (cx - width / 2.0, cy - height / 2.0),  # on the cell (a small marker)
    ]


class _Grid:
    """Placed rectangles bucketed in cells of a grid, for fast overlap tests."""

    def __init__(self, cell: float) -> None:
        self.cell = max(cell, 1.0)
        self.buckets: dict[tuple[int, int], list[Rect]] = {}

    def _keys(self, rect: Rect) -> Iterable[tuple[int, int]]:
        c = self.cell
        for gx in range(int(rect[0] // c), int(rect[2] // c) + 1):
            for gy in range(int(rect[1] // c), int(rect[3] // c) + 1):
                yield gx, gy

    def free(self, rect: Rect, gap: float) -> bool:
        grown = (rect[0] - gap, rect[1] - gap, rect[2] + gap, rect[3] + gap)
        return not any(
            rects_overlap(rect, other, gap) for key in self._keys(grown) for other in self.buckets.get(key, ())
        )

    def add(self, rect: Rect) -> None:
        for key in self._keys(rect):
            self.buckets.setdefault(key, []).append(rect)


def place_labels(
    requests: Iterable[LabelRequest], bounds: Rect, *, gap: float = 3.0, pad: float = 2.0
) -> list[PlacedLabel]:
    """Place labels greedily: none overlaps another (``gap`` apart) or leaves ``bounds``.

    Parameters
    ----------
    requests : iterable of LabelRequest
    bounds : Rect
        Labels are shifted inside it (a label larger than it is left out).
    gap : float
        The least distance between two labels, so that labels of touching cells never run together.
    pad : float
        Distance between a label and its cell's box.

    Returns
    -------
    list of PlacedLabel
        In placement order; requests left out are absent.
    """
    ordered = sorted(requests, key=lambda r: r.priority)
    if not ordered:
        return []
    biggest = max((max(w, h) for r in ordered for w, h in r.sizes), default=1.0)
    grid = _Grid(biggest * 2.0)
    bx0, by0, bx1, by1 = bounds
    placed: list[PlacedLabel] = []
    for request in ordered:
        done = False
        for form, (width, height) in enumerate(request.sizes):
            if width > bx1 - bx0 or height > by1 - by0:
                continue
            spots = _candidates(request.anchor, width, height, pad)
            if form:  # a marker sits on its cell first
                spots.insert(0, spots.pop())
            for x, y in spots:
                x = min(max(x, bx0), bx1 - width)  # never cut at an edge
                y = min(max(y, by0), by1 - height)
                rect = (x, y, x + width, y + height)
                if grid.free(rect, gap):
                    grid.add(rect)
                    placed.append(PlacedLabel(request.key, rect, form))
                    done = True
                    break
            if done:
                break
    return placed
