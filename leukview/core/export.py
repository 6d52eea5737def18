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
from pathlib import Path

from .analysis import ModelRun
from .atomic import atomic_write_text
from .calls import (  # noqa: F401 - re-exported while importers move to calls
    ARTEFACT,
    DEFAULT_CLASSES,
    NON_LEUKOCYTE,
    CellCall,
    Differential,
    blast_percentage,
    differential_count,
    flag_models,
    positive_classes,
    primary_model,
    review_cells,
    review_classes,
    review_order,
)
from .calls import CLINICAL_ORDER as PREFERRED_ORDER  # noqa: F401
from .calls import call_cell as _call_cell
from .calls import lowest_confidence as min_confidence  # noqa: F401
from .cells import Cell


def cell_call(cell: Cell, models: Sequence[ModelRun], use_review: bool = True) -> CellCall:
    """Deprecated: use :func:`leukview.core.calls.call_cell`."""
    return _call_cell(cell, models, use_review=use_review)


def is_flagged(cell: Cell, models: Sequence[ModelRun], threshold: float) -> bool:
    """Deprecated: use ``call_cell(...).needs_review``."""
    return _call_cell(cell, models, threshold).needs_review


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
