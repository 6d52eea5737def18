"""Is this image like the training data? A warning per image and per case.

A model's open-set score (:attr:`leukview.core.cells.Prediction.atypicality`)
flags single cells unlike its training cells; its threshold was fixed so that
about 2 % of held-out cells of the training sources are flagged (the sidecar's
``openset.flagged_fraction_heldout``). When many more cells of one image, or
of a whole case, are flagged, the microscope, the stain or the disease is not
what the model was validated on, and every call of that image deserves a look:
an honest "review everything" instead of a confident wrong differential.

The rule (:func:`domain_check`): warn when at least :data:`MIN_ATYPICAL`
white cells are atypical and their fraction is over :data:`RATE_FACTOR`
times the held-out fraction. The score is that ratio, observed fraction /
held-out fraction: about 1 on images like the training data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cells import Cell

#: The text every view shows when the warning is on.
WARNING = "cells unlike the training data: calls not validated for this microscope or stain"
#: Fewest atypical cells that can raise the warning (one or two odd cells are no pattern).
MIN_ATYPICAL = 3
#: The warning needs an atypical fraction over this multiple of the held-out fraction.
RATE_FACTOR = 3.0
#: Held-out fraction assumed when a model's sidecar does not state one.
DEFAULT_EXPECTED_FRACTION = 0.02


@dataclass(frozen=True)
class DomainCheck:
    """How unlike the training data the white cells of an image (or of a case) are.

    Attributes
    ----------
    cells : int
        White cells with an open-set score.
    atypical : int
        Of them, cells over a model's open-set threshold.
    expected_fraction : float
        The fraction of held-out training-source cells the models flag.
    score : float or None
        ``(atypical / cells) / expected_fraction``: about 1 like the training
        data, higher the further away; None without scored cells.
    warning : str or None
        :data:`WARNING` when the rule fires, else None.
    """

    cells: int
    atypical: int
    expected_fraction: float
    score: float | None
    warning: str | None

    @property
    def fraction(self) -> float | None:
        """Atypical cells over scored cells (None without scored cells)."""
        return self.atypical / self.cells if self.cells else None

    def details(self) -> str:
        """The numbers behind the check, for a person (every view prints them with :data:`WARNING`).

        ``'12 of 40 scored white cells atypical (30.0 %; about 2 % expected)'``.
        """
        if not self.cells:
            return "no white cell has an open-set score"
        return (
            f"{self.atypical} of {self.cells} scored white cells atypical "
            f"({100 * self.atypical / self.cells:.1f} %; about {100 * self.expected_fraction:.3g} % expected)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``domain`` entry of cells.json."""
        return {
            "score": None if self.score is None else round(float(self.score), 4),
            "warning": self.warning,
            "cells": int(self.cells),
            "atypical": int(self.atypical),
            "expected_fraction": round(float(self.expected_fraction), 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DomainCheck:
        """Read a ``domain`` entry; the warning is decided again from the counts."""
        cells = _count(data.get("cells", 0))
        atypical = min(_count(data.get("atypical", 0)), cells)
        expected = data.get("expected_fraction", DEFAULT_EXPECTED_FRACTION)
        if isinstance(expected, bool) or not isinstance(expected, (int, float)) or not 0 < expected < 1:
            expected = DEFAULT_EXPECTED_FRACTION
        return decide(cells, atypical, float(expected))


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0
    return max(int(value), 0)


def decide(cells: int, atypical: int, expected_fraction: float = DEFAULT_EXPECTED_FRACTION) -> DomainCheck:
    """The check for given counts (see the module docstring for the rule).

    Parameters
    ----------
    cells : int
        Scored white cells.
    atypical : int
        Atypical ones among them.
    expected_fraction : float
        Held-out fraction flagged, in (0, 1).

    Returns
    -------
    DomainCheck
    """
    if not 0 < expected_fraction < 1:
        raise ValueError(f"expected_fraction must be in (0, 1), got {expected_fraction}")
    if atypical > cells or min(cells, atypical) < 0:
        raise ValueError(f"atypical cells ({atypical}) must be between 0 and the scored cells ({cells})")
    if not cells:
        return DomainCheck(0, 0, expected_fraction, None, None)
    score = (atypical / cells) / expected_fraction
    # compared in counts, so that exactly 3 x the held-out rate does not warn by a rounding error
    warn = atypical >= MIN_ATYPICAL and atypical > RATE_FACTOR * expected_fraction * cells + 1e-9
    return DomainCheck(cells, atypical, expected_fraction, score, WARNING if warn else None)


def domain_check(cells: Iterable[Cell], expected_fraction: float = DEFAULT_EXPECTED_FRACTION) -> DomainCheck:
    """The check of one image's cells: white cells with an open-set score, atypical when any model says so.

    Reviews do not change it: it describes the image, not the count.

    Parameters
    ----------
    cells : iterable of Cell
    expected_fraction : float
        The models' held-out flagged fraction (sidecar ``openset.flagged_fraction_heldout``).

    Returns
    -------
    DomainCheck
    """
    scored = atypical = 0
    for cell in cells:
        if cell.kind != "wbc":
            continue
        scores = [p for p in cell.predictions.values() if p.atypicality is not None]
        if not scores:
            continue
        scored += 1
        atypical += any(p.atypical for p in scores)
    return decide(scored, atypical, expected_fraction)


def case_check(checks: Sequence[DomainCheck | None]) -> DomainCheck:
    """The check of a case (several images of one patient or slide): their cells pooled.

    Images without a check (no open-set model ran) are skipped; the expected
    fraction is the largest of the images' (the most permissive).
    """
    present = [c for c in checks if c is not None]
    expected = max((c.expected_fraction for c in present), default=DEFAULT_EXPECTED_FRACTION)
    return decide(sum(c.cells for c in present), sum(c.atypical for c in present), expected)
