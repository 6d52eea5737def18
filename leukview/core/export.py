"""What a reviewed field amounts to: each cell's call, the differential count, blast %, CSV.

Pure functions shared by the viewer, its PDF report and its CSV export, so the
three never disagree.

The *call* on a cell is the reviewer's label when there is one; otherwise a
model with a positive class (the ALL model's ``blast``) calling it positive;
otherwise the label of the primary model (the white-cell type model). One
call per cell, as on a CellaVision screen, so the blast row of the
differential and the blast percentage are the same number.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import ModelRun
from .atomic import atomic_write_text
from .cells import Cell

ARTEFACT = "artefact"
# Clinical reading order; unknown classes follow in their model's order.
PREFERRED_ORDER = (
    "neutrophil",
    "band",
    "lymphocyte",
    "monocyte",
    "eosinophil",
    "basophil",
    "ig",
    "blast",
    "erythroblast",
    "platelet",
    "normal",
)
# Offered for manual review when no type model is installed.
DEFAULT_CLASSES = (
    "neutrophil",
    "lymphocyte",
    "monocyte",
    "eosinophil",
    "basophil",
    "ig",
    "blast",
    "erythroblast",
    "platelet",
)
# Counted and shown, but not part of the white-cell total that percentages use.
NON_LEUKOCYTE = frozenset({"erythroblast", "platelet", ARTEFACT})


@dataclass(frozen=True)
class CellCall:
    """The current class of one cell and where it comes from.

    Attributes
    ----------
    label : str or None
        None when no model classified the cell and nobody reviewed it.
    confidence : float or None
        The deciding model's probability for ``label``; None for a reviewer's call.
    model : str or None
        Name of the deciding model; None for a reviewer's call.
    reviewed : bool
    """

    label: str | None
    confidence: float | None
    model: str | None
    reviewed: bool


def primary_model(models: Sequence[ModelRun]) -> ModelRun | None:
    """The model whose classes make the differential: the first without a positive class."""
    return next((m for m in models if not m.positive_class), None)


def flag_models(models: Sequence[ModelRun]) -> list[ModelRun]:
    """Models that flag a positive class (e.g. ``blast``) over the primary model's call."""
    return [m for m in models if m.positive_class]


def _ordered(names: Sequence[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(PREFERRED_ORDER)}
    position = {name: i for i, name in enumerate(names)}
    return sorted(dict.fromkeys(names), key=lambda n: (rank.get(n, len(rank)), position[n]))


def review_classes(models: Sequence[ModelRun]) -> list[str]:
    """The classes a reviewer can assign, in clinical order, ``artefact`` last.

    The primary model's classes plus every flag model's positive class, and
    always ``blast`` (a reviewer must be able to call one whatever the models
    know); the usual white-cell classes when no type model ran, so a manual
    differential works without models.
    """
    primary = primary_model(models)
    names = list(primary.classes) if primary else list(DEFAULT_CLASSES)
    names += [m.positive_class for m in flag_models(models) if m.positive_class]
    names.append("blast")
    return [n for n in _ordered(names) if n != ARTEFACT] + [ARTEFACT]


def cell_call(cell: Cell, models: Sequence[ModelRun], use_review: bool = True) -> CellCall:
    """The current call on a cell (see the module docstring for the rule).

    With ``use_review=False``, the models' call, as if nobody had reviewed the cell.
    """
    if use_review and cell.review.label is not None:
        return CellCall(cell.review.label, None, None, True)
    for run in flag_models(models):
        pred = cell.predictions.get(run.name)
        if pred is not None and pred.label == run.positive_class:
            return CellCall(pred.label, pred.confidence, run.name, False)
    primary = primary_model(models)
    if primary is not None:
        pred = cell.predictions.get(primary.name)
        if pred is not None:
            return CellCall(pred.label, pred.confidence, primary.name, False)
    return CellCall(None, None, None, False)


def min_confidence(cell: Cell, models: Sequence[ModelRun]) -> float | None:
    """The lowest top-class probability any of ``models`` gave the cell (None if none ran)."""
    values = [cell.predictions[m.name].confidence for m in models if m.name in cell.predictions]
    return min(values) if values else None


def is_flagged(cell: Cell, models: Sequence[ModelRun], threshold: float) -> bool:
    """True for an unreviewed cell that some model classified with confidence below ``threshold``."""
    if cell.review.reviewed:
        return False
    lowest = min_confidence(cell, models)
    return lowest is not None and lowest < threshold


def review_cells(cells: Sequence[Cell]) -> list[Cell]:
    """The cells a differential reviews: white cells, plus any cell a reviewer labelled."""
    return [c for c in cells if c.kind == "wbc" or c.review.label is not None]


def review_order(cells: Sequence[Cell], models: Sequence[ModelRun], threshold: float) -> list[Cell]:
    """Review cells in the order they are offered: flagged, then unreviewed, then reviewed.

    Within each group, lower confidence comes first; ties keep reading order
    (top to bottom, left to right), so the order is stable.
    """

    def key(cell: Cell) -> tuple[int, float, float, float]:
        lowest = min_confidence(cell, models)
        group = 2 if cell.review.reviewed else (0 if is_flagged(cell, models, threshold) else 1)
        return (
            group,
            1.0 if lowest is None else lowest,
            round(cell.centroid[1] / 32.0),
            cell.centroid[0],
        )

    return sorted(review_cells(cells), key=key)


@dataclass
class Differential:
    """Counts per class over the review cells.

    Attributes
    ----------
    classes : list of str
        Rows, in display order.
    counts : dict of str to int
        Cells per class (every class in ``classes`` present, zero when none).
    leukocytes : int
        Classified white cells: the denominator of percentages (classes in
        :data:`NON_LEUKOCYTE` and unclassified cells excluded).
    unclassified : int
        White cells with neither a model call nor a review.
    reviewed, total : int
        Review cells a person has labelled, and all review cells.
    """

    classes: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    leukocytes: int = 0
    unclassified: int = 0
    reviewed: int = 0
    total: int = 0

    def percent(self, name: str) -> float | None:
        """Percentage of the white-cell total; None for non-leukocyte classes or an empty count."""
        if name in NON_LEUKOCYTE or not self.leukocytes:
            return None
        return 100.0 * self.counts.get(name, 0) / self.leukocytes


def differential_count(cells: Sequence[Cell], models: Sequence[ModelRun]) -> Differential:
    """Count the review cells per class, reviewer corrections included.

    Parameters
    ----------
    cells : sequence of Cell
        All cells of the field (red cells and platelets are skipped unless reviewed).
    models : sequence of ModelRun
        The models that ran, as recorded in the analysis.

    Returns
    -------
    Differential
    """
    classes = review_classes(models)
    counts = dict.fromkeys(classes, 0)
    result = Differential(classes=classes, counts=counts)
    for cell in review_cells(cells):
        result.total += 1
        result.reviewed += int(cell.review.reviewed)
        label = cell_call(cell, models).label
        if label is None:
            result.unclassified += 1
            continue
        if label not in counts:  # a label from an older model version: keep it visible
            classes.insert(len(classes) - 1, label)
            counts[label] = 0
        counts[label] += 1
        if label not in NON_LEUKOCYTE:
            result.leukocytes += 1
    return result


def positive_classes(models: Sequence[ModelRun]) -> set[str]:
    """Names that count as blasts: every flag model's positive class, else ``blast``."""
    return {m.positive_class for m in flag_models(models) if m.positive_class} or {"blast"}


def blast_percentage(cells: Sequence[Cell], models: Sequence[ModelRun]) -> float | None:
    """Blasts as a percentage of classified white cells, reviewer corrections included.

    Returns
    -------
    float or None
        None when there is no classified white cell, or when nothing could
        have called a blast (no model with a blast class ran and nobody has
        reviewed a cell): a 0 % there would read as "no blasts seen".
    """
    positives = positive_classes(models)
    primary = primary_model(models)
    can_call = bool(flag_models(models)) or bool(primary and positives & set(primary.classes))
    diff = differential_count(cells, models)
    if not diff.leukocytes or not (can_call or diff.reviewed):
        return None
    return 100.0 * sum(diff.counts.get(name, 0) for name in positives) / diff.leukocytes


def csv_table(
    cells: Sequence[Cell], models: Sequence[ModelRun], threshold: float = 0.0
) -> tuple[list[str], list[list[object]]]:
    """One row per cell: position, call, review, every model's label and confidence, measurements.

    Parameters
    ----------
    cells : sequence of Cell
    models : sequence of ModelRun
    threshold : float
        Confidence below which an unreviewed cell is marked ``flagged``.

    Returns
    -------
    header : list of str
    rows : list of list
        In the order of ``cells``; empty strings where a value is unknown.
    """
    measures = sorted({key for cell in cells for key in cell.measurements})
    header = [
        "id", "kind", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
        "class", "confidence", "source", "flagged", "reviewed", "reviewer", "review_time",
    ]  # fmt: skip
    for run in models:
        header += [f"{run.name}:label", f"{run.name}:confidence"]
    header += measures
    rows: list[list[object]] = []
    for cell in cells:
        call = cell_call(cell, models)
        row: list[object] = [
            cell.id,
            cell.kind,
            round(float(cell.centroid[0]), 2),
            round(float(cell.centroid[1]), 2),
            *(int(v) for v in cell.bbox),
            call.label or "",
            "" if call.confidence is None else round(call.confidence, 4),
            "reviewer" if call.reviewed else (call.model or ""),
            int(is_flagged(cell, models, threshold)),
            int(cell.review.reviewed),
            cell.review.reviewer or "",
            cell.review.time or "",
        ]
        for run in models:
            pred = cell.predictions.get(run.name)
            row += ["", ""] if pred is None else [pred.label, round(pred.confidence, 4)]
        for key in measures:
            value = cell.measurements.get(key)
            row.append("" if value is None else round(float(value), 4))
        rows.append(row)
    return header, rows


def cells_csv(cells: Sequence[Cell], models: Sequence[ModelRun], threshold: float = 0.0) -> str:
    """The text of :func:`csv_table` as CSV (comma separated, ``\\n`` line ends)."""
    header, rows = csv_table(cells, models, threshold)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_cells_csv(
    path: str | os.PathLike[str], cells: Sequence[Cell], models: Sequence[ModelRun], threshold: float = 0.0
) -> Path:
    """Write :func:`cells_csv` to ``path`` atomically; returns the path."""
    return atomic_write_text(path, cells_csv(cells, models, threshold))
