"""Classical segmentation of a blood smear field: white cells, red cells, platelets.

Nothing is learned: every step is a few array operations a person can inspect,
and every size is a multiple of the red-cell diameter, so magnification does not
matter. The method is described step by step in ``_pipeline`` and, with figures,
in docs/segmentation.md.

Public API
----------
segment
    Find and measure the white cells, red cells and platelets of a field.
Segmentation
    What :func:`segment` found: cells (:class:`leukview.core.cells.Cell`),
    label image, nucleus mask, red-cell diameter, scale.
SegmentationParams
    Every tunable of :func:`segment`, with persistence and descriptions.
estimate_rbc_diameter
    The red-cell diameter of a field, in image pixels.
"""

from ._assemble import Segmentation
from ._params import SegmentationParams
from ._pipeline import segment
from ._rbc_diameter import estimate_rbc_diameter

__all__ = [
    "SegmentationParams",
    "Segmentation",
    "segment",
    "estimate_rbc_diameter",
]
