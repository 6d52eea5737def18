"""Corrections of the segmentation, without Qt: add a missed cell, split a merged one, redraw an outline.

Pure functions of the image's pixels and the reviewer's geometry, in image
pixels. Every cell they make is drawn, measured and described exactly as the
pipeline's (:func:`leukview.core.segment.segment`): its record from its mask
(the pipeline's ``_make_cell``, so :func:`~leukview.core.measure.measure_cell`),
its nucleus by the pipeline's full-resolution nuclear-stain rule (blue minus
green over the glass's, above the field's nucleus threshold, holes filled),
and sizes as multiples of the red-cell diameter. :func:`classify_cells` runs
the models of the analysis on the new cells (with their class-activation maps).

The undoable, audited commands that use them are the review document's
(:meth:`leukview.core.document.ReviewDocument.add_cell`, ``delete_cells``,
``split_cell``, ``redraw_cell``).

Public API
----------
EditContext
    The image's pixels (a region reader), its red-cell diameter and stain
    levels, the segmentation parameters and the loaded classifiers.
StainLevels
    The field's background colour and its cell and nucleus thresholds.
EditError
    An edit that cannot be made (the message says what to do instead).
cell_from_outline, cell_from_click, split_cell, redraw_cell
    New cells from a drawn outline, a click, a line or seeds, a new outline.
classify_cells, absorbed_cells, cell_at, cell_to_split, cells_crossed, cell_mask
    Re-classification, the red cells and platelets a new cell covers, hit
    tests, a cell's mask.

Layout: ``_context`` (the pixels, stain levels and models of an image),
``_geometry`` (masks and hit tests), ``_cells`` (new cells from geometry),
``_classify`` (the models on new cells).
"""

from ._cells import SEED_COMPACTNESS, cell_from_click, cell_from_outline, redraw_cell, split_cell
from ._classify import classify_cells
from ._context import EditContext, EditError, RegionReader, StainLevels
from ._geometry import Points, absorbed_cells, cell_at, cell_mask, cell_to_split, cells_crossed

__all__ = [
    "SEED_COMPACTNESS",
    "EditContext",
    "EditError",
    "Points",
    "RegionReader",
    "StainLevels",
    "absorbed_cells",
    "cell_at",
    "cell_from_click",
    "cell_from_outline",
    "cell_mask",
    "cell_to_split",
    "cells_crossed",
    "classify_cells",
    "redraw_cell",
    "split_cell",
]
