"""Per-cell measurements: size, shape, nucleus and colour.

Pure functions on a cell's binary masks and the matching image pixels. They
work on small crops (a cell's bounding box), so measuring every cell of a
field costs little; :func:`leukview.core.segment.segment` calls
:func:`measure_cell` for each cell it finds.

Every value is a plain ``float`` under a flat key, so the dictionary goes to
JSON and CSV as is:

=========================  =====================================================
key                        meaning
=========================  =====================================================
area                       cell area, px²
perimeter                  length of the cell boundary, px
circularity                4π·area / perimeter², 1 for a disc, lower when ragged
equivalent_diameter        diameter of the disc with the cell's area, px
nucleus_area               nucleus area, px² (0 without a nucleus)
nc_ratio                   nucleus area / cytoplasm area (cytoplasm at least 1 px)
nucleus_fraction           nucleus area / cell area, in [0, 1]
lobe_count                 number of nuclear lobes (0 without a nucleus)
nucleus_mean_rgb_{r,g,b}   mean colour of the nucleus (only when there is one)
cytoplasm_mean_rgb_{r,g,b} mean colour of the cell outside the nucleus (when any)
=========================  =====================================================

Measurements are in pixels. Figures in µm (``area_um2``, ``nucleus_area_um2``,
``equivalent_diameter_um``, ``perimeter_um``) belong to the image's
calibration and are derived from it when shown or exported
(:meth:`leukview.core.calibration.Calibration.derived_measurements`), so they
follow the pixel size when the user changes it; the pipeline
(:func:`leukview.core.analysis.analyze_image`) never stores them on a cell.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from .calibration import Calibration
from .errors import LeukViewError

#: A lobe is a part of the nucleus whose core (distance to the nuclear edge
#: above this fraction of the thickest point) is separate from the others.
LOBE_CORE_FRACTION = 0.5


def measure_cell(
    cell_mask: np.ndarray,
    image: np.ndarray,
    nucleus_mask: np.ndarray | None = None,
    *,
    pixel_size_um: float | None = None,
    pixel_scale: float = 1.0,
) -> dict[str, float]:
    """Measure one cell.

    Parameters
    ----------
    cell_mask : ndarray of bool, shape (h, w)
        The whole cell (nucleus included), usually cropped to its bounding box.
    image : ndarray of uint8, shape (h, w, 3)
        RGB pixels under ``cell_mask`` (the same crop).
    nucleus_mask : ndarray of bool, shape (h, w), optional
        The nucleus; pixels outside ``cell_mask`` are ignored.
    pixel_size_um : float, optional
        Deprecated (the pipeline passes None): size of one *image* pixel in µm;
        adds the derived ``*_um2`` / ``*_um`` keys of
        :meth:`~leukview.core.calibration.Calibration.derived_measurements`.
    pixel_scale : float
        Image pixels per mask pixel, when the masks were computed on a reduced
        copy of the image (areas scale with its square, lengths with it).

    Returns
    -------
    dict of str to float
        See the module docstring for the keys.

    Raises
    ------
    LeukViewError
        When the shapes of the masks and the image disagree.
    """
    cell = np.asarray(cell_mask, dtype=bool)
    img = np.asarray(image)
    if cell.ndim != 2 or img.shape[:2] != cell.shape or img.ndim != 3 or img.shape[2] != 3:
        raise LeukViewError(
            f"measure_cell needs a 2-D mask and an RGB image of the same size, "
            f"got mask {cell.shape} and image {img.shape}"
        )
    nucleus = np.zeros_like(cell) if nucleus_mask is None else np.asarray(nucleus_mask, dtype=bool)
    if nucleus.shape != cell.shape:
        raise LeukViewError(f"nucleus mask {nucleus.shape} does not match cell mask {cell.shape}")
    nucleus = nucleus & cell
    cytoplasm = cell & ~nucleus

    k2 = float(pixel_scale) ** 2
    area_px = float(np.count_nonzero(cell))
    nucleus_px = float(np.count_nonzero(nucleus))
    cyto_px = area_px - nucleus_px
    area = area_px * k2
    perim = perimeter(cell) * float(pixel_scale)
    nucleus_area = nucleus_px * k2
    out: dict[str, float] = {
        "area": area,
        "perimeter": perim,
        "circularity": circularity(area, perim),
        "equivalent_diameter": float(np.sqrt(4.0 * area / np.pi)),
        "nucleus_area": nucleus_area,
        "nc_ratio": nucleus_px / max(cyto_px, 1.0),
        "nucleus_fraction": nucleus_px / area_px if area_px else 0.0,
        "lobe_count": float(lobe_count(nucleus)),
    }
    if nucleus_px:
        out.update(_mean_rgb(img, nucleus, "nucleus_mean_rgb"))
    if cyto_px:
        out.update(_mean_rgb(img, cytoplasm, "cytoplasm_mean_rgb"))
    if pixel_size_um is not None and pixel_size_um > 0:
        # one formula for µm figures: the calibration's
        out.update(Calibration(float(pixel_size_um), "user").derived_measurements(out))
    return out


def perimeter(mask: np.ndarray) -> float:
    """Boundary length of a binary region in pixels.

    Parameters
    ----------
    mask : ndarray of bool, shape (h, w)

    Returns
    -------
    float
        Length of the outer boundary (every part, holes not counted), traced
        through the boundary pixels and simplified to within 0.7 px so the
        staircase of a digitised edge does not add length: within about 3 % of
        the true length for a disc of radius 5 px or more.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    contours, _ = cv2.findContours(
        _pad(mask.astype(np.uint8), 0), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    return float(sum(cv2.arcLength(cv2.approxPolyDP(c, 0.7, True), True) for c in contours))


def circularity(area: float, perim: float) -> float:
    """4π·area / perimeter², clipped to [0, 1] (digitised small discs overshoot)."""
    if perim <= 0:
        return 0.0
    return float(min(1.0, 4.0 * np.pi * area / (perim * perim)))


def lobe_count(nucleus_mask: np.ndarray, min_area: int = 4) -> int:
    """Number of nuclear lobes.

    A lobe is a thick part of the nucleus: the pixels farther from the nuclear
    edge than :data:`LOBE_CORE_FRACTION` of the thickest point of their own
    nuclear fragment form one core per lobe, so lobes joined by a thin bridge
    (the filament of a segmented neutrophil) count separately while a round or
    oval nucleus counts once.

    Parameters
    ----------
    nucleus_mask : ndarray of bool, shape (h, w)
    min_area : int
        Fragments smaller than this (px) are ignored.

    Returns
    -------
    int
        0 for an empty mask.
    """
    mask = np.asarray(nucleus_mask, dtype=bool)
    if not mask.any():
        return 0
    frag, n_frag = ndi.label(mask)
    sizes = np.bincount(frag.ravel(), minlength=n_frag + 1)
    dist = cv2.distanceTransform(_pad(mask.astype(np.uint8), 0), cv2.DIST_L2, 5)[1:-1, 1:-1]
    peak = label_max(dist, frag, n_frag, separated=True)[1:]
    keep = np.zeros(n_frag + 1, dtype=bool)
    keep[1:] = sizes[1:] >= min_area
    if not keep.any():
        return 1
    # Fragments much thinner than the thickest one are debris, not lobes.
    keep[1:] &= peak >= 0.25 * float(peak[keep[1:]].max())
    thresh = np.zeros(n_frag + 1, dtype=np.float32)
    thresh[1:] = LOBE_CORE_FRACTION * peak
    core = keep[frag] & (dist >= thresh[frag]) & (dist > 0)
    _, n_core = ndi.label(core)
    return max(int(n_core), 1)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a binary mask (as ``scipy.ndimage.binary_fill_holes``, much faster).

    Parameters
    ----------
    mask : ndarray of bool, shape (h, w)

    Returns
    -------
    ndarray of bool, shape (h, w)
        Every background pixel not connected (4-neighbours) to the border is set.
    """
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return m.copy()
    outside = _pad((~m).astype(np.uint8), 1)
    # Flood the background from the (padded) corner; what it cannot reach is a hole.
    flood = np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, flood, (0, 0), 2, flags=4)
    return (outside[1:-1, 1:-1] != 2)


def label_max(
    values: np.ndarray, labels: np.ndarray, n: int, *, separated: bool = False
) -> np.ndarray:
    """Maximum of ``values`` per label 0..n (0 where a label is absent).

    Parameters
    ----------
    values : ndarray of float, shape (h, w)
    labels : ndarray of int, shape (h, w)
        Labels 0..n; label 0 is not measured (its entry is 0).
    n : int
    separated : bool
        Promise that ``values`` are non-negative and 0 off the labels, and that
        different labels never touch (8-connected components, or a distance map
        of them): then only 3x3 local maxima can be a label's maximum, and only
        they are looked at, which is much faster.

    Returns
    -------
    ndarray of float64, shape (n + 1,)
    """
    out = np.zeros(n + 1, np.float64)
    sel = labels > 0
    if separated:
        v32 = values.astype(np.float32, copy=False)
        sel &= v32 >= cv2.dilate(v32, np.ones((3, 3), np.uint8))
    np.maximum.at(out, labels[sel], values[sel])
    return out


def _pad(img: np.ndarray, value: int) -> np.ndarray:
    """A one-pixel constant border (OpenCV's is much faster than numpy's pad on small crops)."""
    return cv2.copyMakeBorder(img, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=value)


def _mean_rgb(image: np.ndarray, mask: np.ndarray, prefix: str) -> dict[str, float]:
    if image.dtype == np.uint8:
        mean = cv2.mean(np.ascontiguousarray(image), mask=mask.astype(np.uint8))
    else:
        mean = image[mask].reshape(-1, 3).mean(axis=0)
    return {f"{prefix}_r": float(mean[0]), f"{prefix}_g": float(mean[1]), f"{prefix}_b": float(mean[2])}
