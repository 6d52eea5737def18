"""The analysis's models run on new cells, as the analysis ran them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..cells import Cell
from ..preprocess import crop_box
from ._context import EditContext

if TYPE_CHECKING:
    from ..runs import ModelRun


def classify_cells(context: EditContext, cells: Sequence[Cell], runs: Sequence[ModelRun]) -> list[str]:
    """Run the analysis's models on new cells, as the analysis ran them (maps included), in place.

    Each model reads a window of the image holding the crops of the cells it
    applies to, so a large image is never read whole.

    Parameters
    ----------
    context : EditContext
    cells : sequence of Cell
    runs : sequence of ModelRun
        The models of the analysis.

    Returns
    -------
    list of str
        The models of ``runs`` that could not classify the cells (no loaded
        classifier of that name and version); their cells have no prediction by them.
    """
    missing: list[str] = []
    for run in runs:
        classifier = context.classifier(run)
        if classifier is None:
            missing.append(run.name)
            continue
        spec = classifier.spec
        targets = [c for c in cells if c.kind in spec.applies_to]
        if not targets:
            continue
        boxes = np.array([crop_box(c, spec.crop) for c in targets])
        x0, y0 = max(int(boxes[:, 0].min()), 0), max(int(boxes[:, 1].min()), 0)
        x1, y1 = min(int(boxes[:, 2].max()), context.width), min(int(boxes[:, 3].max()), context.height)
        pixels, ox, oy = context.window(x0, y0, x1, y1)
        # The window's borders are the image's where the crops reach past it, so
        # mirroring happens where the analysis mirrored.
        shifted = [_moved(c, -ox, -oy) for c in targets]
        predictions = classifier.predict(pixels, shifted)
        for cell, prediction in zip(targets, predictions, strict=True):
            if prediction.cam_box is not None:
                bx0, by0, bx1, by1 = prediction.cam_box
                prediction.cam_box = (bx0 + ox, by0 + oy, bx1 + ox, by1 + oy)
            cell.predictions[run.name] = prediction
    return missing


def _moved(cell: Cell, dx: int, dy: int) -> Cell:
    contour = np.asarray(cell.contour, np.int32) + np.array([dx, dy], np.int32)
    x0, y0, x1, y1 = cell.bbox
    return replace(
        cell,
        contour=contour,
        bbox=(x0 + dx, y0 + dy, x1 + dx, y1 + dy),
        centroid=(cell.centroid[0] + dx, cell.centroid[1] + dy),
        nucleus_contour=None,
        predictions={},
    )
