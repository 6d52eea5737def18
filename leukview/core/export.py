"""The cells of a field as CSV: one row per cell with its call, review, models and measurements.

The same table is exported by the viewer (File > Export) and by
``leukview report --csv``. Calls and flags come from
:func:`leukview.core.calls.call_cell`; figures in µm are derived from the
:class:`~leukview.core.calibration.Calibration` given, never read from the
cells, so a changed pixel size changes every exported µm figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .analysis import ModelRun, is_physical_key
from .atomic import atomic_write_text
from .calibration import AREA_KEYS, LENGTH_KEYS, Calibration
from .calls import DEFAULT_CONFIDENCE_THRESHOLD, call_cell
from .cells import Cell
from .summary import csv_line

FLAG_SEPARATOR = ";"
#: The first columns, in order; then kind, position, per-model columns and measurements.
LEADING_COLUMNS = ("id", "call", "confidence", "source", "flags", "reviewed", "reviewer", "review_time")


def physical_columns(measures: Sequence[str]) -> list[str]:
    """The µm columns derived from pixel measurement keys (``area`` -> ``area_um2``, ...)."""
    present = set(measures)
    return [f"{k}_um2" for k in AREA_KEYS if k in present] + [f"{k}_um" for k in LENGTH_KEYS if k in present]


def csv_table(
    cells: Sequence[Cell],
    models: Sequence[ModelRun],
    threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    *,
    calibration: Calibration | None = None,
) -> tuple[list[str], list[list[object]]]:
    """One row per cell: call, flags, review, position, every model's label and confidence, measurements.

    Parameters
    ----------
    cells : sequence of Cell
    models : sequence of ModelRun
        As recorded in the analysis (their order decides the call).
    threshold : float
        Confidence under which an unreviewed cell is flagged ``low-confidence``.
    calibration : Calibration, optional
        Gives the µm columns (``area_um2``, ``nucleus_area_um2``,
        ``equivalent_diameter_um``, ``perimeter_um``); they are empty when the
        pixel size is unknown (None: unknown).

    Returns
    -------
    header : list of str
        :data:`LEADING_COLUMNS`, ``kind``, ``centroid_x/y``, ``bbox_x0..y1``,
        ``model:<name>:label`` and ``model:<name>:confidence`` per model, the
        pixel measurements (sorted), the µm columns.
    rows : list of list
        In the order of ``cells``; empty strings where a value is unknown.
        ``source`` is the deciding model's name or ``review``; ``flags`` are
        joined with ``;``.
    """
    calibration = calibration or Calibration.unknown()
    measures = sorted({key for cell in cells for key in cell.measurements if not is_physical_key(key)})
    physical = physical_columns(measures)
    header = [
        *LEADING_COLUMNS, "kind", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
    ]  # fmt: skip
    for run in models:
        header += [f"model:{run.name}:label", f"model:{run.name}:confidence"]
    header += measures + physical
    rows: list[list[object]] = []
    for cell in cells:
        call = call_cell(cell, models, threshold)
        row: list[object] = [
            cell.id,
            call.label or "",
            "" if call.confidence is None else round(call.confidence, 4),
            call.source or "",
            FLAG_SEPARATOR.join(call.flags),
            int(call.reviewed),
            cell.review.reviewer or "",
            cell.review.time or "",
            cell.kind,
            round(float(cell.centroid[0]), 2),
            round(float(cell.centroid[1]), 2),
            *(int(v) for v in cell.bbox),
        ]
        for run in models:
            pred = cell.predictions.get(run.name)
            row += ["", ""] if pred is None else [pred.label, round(pred.confidence, 4)]
        for key in measures:
            value = cell.measurements.get(key)
            row.append("" if value is None else round(float(value), 4))
        derived = calibration.derived_measurements(cell.measurements)
        for key in physical:
            value = derived.get(key)
            row.append("" if value is None else round(value, 4))
        rows.append(row)
    return header, rows


def cells_csv(
    cells: Sequence[Cell],
    models: Sequence[ModelRun],
    threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    *,
    calibration: Calibration | None = None,
    origins: Sequence[tuple[str, int]] | None = None,
) -> str:
    """The text of :func:`csv_table` as CSV (comma separated, ``\\n`` line ends).

    ``origins``, one ``(image, cell)`` per cell, puts the columns ``case_image``
    and ``image_cell`` first: where each cell of a pooled case comes from.

    Text a spreadsheet would evaluate (a reviewer or a label ``=1+1``, a
    class named ``@SUM(A1)``) is escaped with a leading ``'``; numbers are
    written as numbers (:func:`~leukview.core.summary.spreadsheet_safe`).
    """
    header, rows = csv_table(cells, models, threshold, calibration=calibration)
    if origins is not None:
        header = ["case_image", "image_cell", *header]
        rows = [[image, cell, *row] for (image, cell), row in zip(origins, rows, strict=True)]
    return csv_line(header) + "".join(csv_line(row) for row in rows)


def write_cells_csv(
    path: str | os.PathLike[str],
    cells: Sequence[Cell],
    models: Sequence[ModelRun],
    threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    *,
    calibration: Calibration | None = None,
    origins: Sequence[tuple[str, int]] | None = None,
) -> Path:
    """Write :func:`cells_csv` to ``path`` atomically; returns the path."""
    return atomic_write_text(path, cells_csv(cells, models, threshold, calibration=calibration, origins=origins))
