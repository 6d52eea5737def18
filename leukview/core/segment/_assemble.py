"""The result of a segmentation, and its assembly from the work-scale labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage as ndi

from ..cells import Cell
from ._params import SegmentationParams
from ._records import _clip_to_image, _make_cell
from ._stain import _Channels
from ._white_cells import _refine_wbc


@dataclass
class Segmentation:
    """What :func:`segment` found in one image.

    Attributes
    ----------
    cells : list of Cell
        Ids 1..n: white cells first, then red cells, then platelets, each in
        reading order; measurements filled.
    rbc_diameter : float
        Red-cell diameter used, in image pixels.
    labels : ndarray of int32, shape (H, W)
        Pixel value = cell id, 0 for background.
    nucleus_mask : ndarray of bool, shape (H, W)
        Nuclei of the white cells.
    scale : float
        Work-image pixels per image pixel (1 when not shrunk).
    params : SegmentationParams
        The parameters used.
    """

    cells: list[Cell]
    rbc_diameter: float
    labels: np.ndarray
    nucleus_mask: np.ndarray
    scale: float = 1.0
    params: SegmentationParams = field(default_factory=SegmentationParams)

    def cells_of_kind(self, kind: str) -> list[Cell]:
        """The cells of one kind ('wbc', 'rbc' or 'platelet'), in id order."""
        return [c for c in self.cells if c.kind == kind]


def _assemble(
    rgb: np.ndarray,
    small: np.ndarray,
    scale: float,
    d: float,
    params: SegmentationParams,
    pixel_size_um: float | None,
    wbc_labels: np.ndarray,
    wbc_nuc: np.ndarray,
    n_wbc: int,
    rbc_labels: np.ndarray,
    plt_labels: np.ndarray,
    ch: _Channels,
) -> Segmentation:
    """Cells with ids, full-resolution labels and nucleus mask, measurements."""
    h, w = rgb.shape[:2]
    inv = 1.0 / scale
    # Ids: white cells, red cells, platelets, each in reading order.
    work = np.zeros(wbc_labels.shape, np.int32)
    entries: list[tuple[str, np.ndarray, int, tuple[slice, slice]]] = []
    offset = 0
    for kind, lab in (("wbc", wbc_labels), ("rbc", rbc_labels), ("platelet", plt_labels)):
        objs = ndi.find_objects(lab)
        found = [(i, sl) for i, sl in enumerate(objs, start=1) if sl is not None]
        found.sort(key=lambda t: (t[1][0].start + t[1][0].stop, t[1][1].start + t[1][1].stop))
        if not found:
            continue
        lut = np.zeros(len(objs) + 1, np.int32)
        for k, (i, sl) in enumerate(found, start=offset + 1):
            lut[i] = k
            entries.append((kind, lab, i, sl))
        work = np.where(lab > 0, lut[lab], work)
        offset += len(found)
    full: np.ndarray
    if scale >= 0.999:
        full = work.copy()
    else:
        full = cv2.resize(work, (w, h), interpolation=cv2.INTER_NEAREST)
    nucleus_full = np.zeros((h, w), bool)
    cells: list[Cell] = []
    sigma = max(params.smoothing, 0.5 * inv) if params.smoothing > 0 else 0.0
    for cid, (kind, lab, i, sl) in enumerate(entries, start=1):
        if kind == "wbc":
            cell = _refine_wbc(
                rgb, full, nucleus_full, cid, lab, wbc_nuc, i, sl, scale, sigma, ch, pixel_size_um
            )
        else:
            m = lab[sl] == i
            origin = (sl[1].start, sl[0].start)
            cell = _make_cell(cid, kind, small[sl], m, None, origin, inv, pixel_size_um)
        if cell is not None:
            cells.append(cell)
    # Drop ids that lost every pixel (a white cell redrawn over them): keep ids 1..n.
    if len(cells) != len(entries):
        lut = np.zeros(len(entries) + 1, np.int32)
        for new_id, cell in enumerate(cells, start=1):
            lut[cell.id] = new_id
            cell.id = new_id
        full = lut[full]
    for cell in cells:
        _clip_to_image(cell, w, h)
    return Segmentation(cells, float(d), full, nucleus_full, float(scale), params)
