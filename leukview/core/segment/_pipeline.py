"""Classical segmentation of a blood smear field: white cells, red cells, platelets.

The method, step by step (each step is a few array operations a person can
inspect; nothing is learned). docs/segmentation.md has the figures.

1. **Scale** (``_rbc_diameter``). The red-cell diameter ``d`` is estimated from
   the image (:func:`estimate_rbc_diameter`: isolated round cells, else
   distance-transform peaks, found fine to coarse so small cells never merge)
   and the field is shrunk so a red cell spans about
   :attr:`SegmentationParams.work_rbc_diameter` pixels. Every size below is a
   multiple of ``d``, so magnification does not matter, and the work image is
   small, so segmentation is fast.
2. **Background and stains** (``_stain``). The background colour is taken per
   tile from the brightest pixels (flattening uneven illumination), or is white
   for cells cut out on black (C-NMC). Optical density against it gives a *cell*
   channel (total stain; cut just above the glass's own spread, or at the
   lower cut of a three-class Otsu) and a *nuclear stain* channel (blue minus
   green: Romanowsky-stained nuclei are blue-purple, red cells red-pink),
   cut at the upper threshold of a three-class Otsu over the cells.
3. **Nuclei** (``_nuclei``). The nuclear-stain mask is cleaned by morphology.
   Fragments closer than :attr:`~SegmentationParams.lobe_merge_distance` are
   grouped (the lobes of a neutrophil are one cell). Groups large and thick
   enough are white-cell nuclei (erythroblasts included); small isolated specks
   are platelets. Touching nuclei are split by a marker-controlled watershed on
   the distance transform (h-maxima markers) when each piece is nucleus-sized.
4. **Cytoplasm and red cells** (here and ``_white_cells``). One watershed on the
   distance transform of the cell mask grows every white cell from its nucleus
   and every red cell from its thick core; they meet at the waists between
   them. A white cell is limited to
   :attr:`~SegmentationParams.max_cytoplasm_width` beyond its nucleus and
   trimmed by colour where it grew into red cells; touching white cells that
   together make one round cell with plenty of cytoplasm are joined (lobes far
   apart).
5. **Red cells and platelets** (``_red_cells``, ``_platelets``). Red cells get
   their own, stricter cut of total stain (Otsu, glass | red cells), their
   pallor filled, and are split by a distance-transform marker watershed sized
   by their own diameter; clumps still several cells large are divided by area.
   Platelets are small specks of nuclear stain with a dark centre, away from
   white cells, not enclosed by red cells.
6. **Refine and measure** (``_assemble``, ``_white_cells``, ``_records``). White
   cells and their nuclei are redrawn at full resolution in their own small
   crop; every cell is measured (:func:`leukview.core.measure.measure_cell`).

Each step is reported to ``progress`` with its share of the whole
(:data:`STAGES`), and ``should_cancel`` is polled between them.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.segmentation import watershed

from ..progress import CancelCheck, ProgressCallback, checkpoint
from ._assemble import Segmentation, _assemble
from ._image import _as_rgb, _resize
from ._morphology import _disk, _distance, _fill_each, _fill_small_holes, _h_maxima, _label_cores
from ._nuclei import _nucleus_groups
from ._params import SegmentationParams
from ._platelets import _platelets
from ._rbc_diameter import _estimate
from ._red_cells import _red_cell_mask, _split_red_cells
from ._stain import _channels
from ._white_cells import _merge_lobes, _trim_cytoplasm

#: The steps of :func:`segment` as its progress reports them: where each starts
#: (a fraction of the whole, from their share of the time on large fields) and what it says.
STAGES: dict[str, tuple[float, str]] = {
    "scale": (0.0, "segmenting: red-cell size"),
    "stains": (0.08, "segmenting: stain channels"),
    "nuclei": (0.18, "segmenting: nuclei"),
    "white": (0.25, "segmenting: white cells"),
    "red": (0.38, "segmenting: red cells"),
    "platelets": (0.58, "segmenting: platelets"),
    "records": (0.62, "segmenting: measuring cells"),
}


def segment(
    image: np.ndarray,
    params: SegmentationParams | None = None,
    *,
    pixel_size_um: float | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> Segmentation:
    """Find and measure the white cells, red cells and platelets of a field.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB field (16-bit and float images are converted).
    params : SegmentationParams, optional
        Defaults when None.
    pixel_size_um : float, optional
        µm per pixel; adds ``*_um2`` measurements when given.
    progress : callable(fraction, message), optional
        Told as each step begins (:data:`STAGES`), and 1.0 at the end.
    should_cancel : callable() -> bool, optional
        Polled between steps; True raises :class:`~leukview.core.progress.AnalysisCancelled`.

    Returns
    -------
    Segmentation

    Raises
    ------
    LeukViewError
        When the input is not an RGB image.
    """

    def stage(name: str) -> None:
        checkpoint(progress, should_cancel, *STAGES[name])

    params = params or SegmentationParams()
    stage("scale")
    rgb = _as_rgb(image)
    h, w = rgb.shape[:2]
    d, small, est_scale = _estimate(rgb, params)
    if min(h, w) < 8:
        checkpoint(progress, should_cancel, 1.0, "segmented")
        return Segmentation([], d, np.zeros((h, w), np.int32), np.zeros((h, w), bool), 1.0, params)
    scale = min(1.0, params.work_rbc_diameter / d)
    if small is not None and abs(scale / est_scale - 1.0) < 0.2:
        scale = est_scale  # the estimate's own copy is close enough: no second resize
    else:
        small = _resize(rgb, scale)
    ds = d * scale  # red-cell diameter in work pixels
    rbc_area = np.pi * ds * ds / 4.0
    stage("stains")
    ch = _channels(small, params, tile=3.0 * ds)
    lit = ~ch.black

    # --- cells (any kind) against the glass; central pallor and small gaps filled
    cells = lit if ch.black.any() else ch.density > ch.cell_threshold
    cells = cv2.morphologyEx(cells.astype(np.uint8), cv2.MORPH_OPEN, _disk(1))
    cells = cv2.morphologyEx(cells, cv2.MORPH_CLOSE, _disk(1)) > 0
    cells = _fill_small_holes(cells, 0.5 * rbc_area)

    # --- nuclear stain: white-cell nuclei (lobes grouped) and platelets
    stage("nuclei")
    nuc = (ch.nuclear > ch.nucleus_threshold) & lit
    nuc = cv2.morphologyEx(nuc.astype(np.uint8), cv2.MORPH_OPEN, _disk(max(1.0, 0.03 * ds))) > 0
    nuc = _fill_small_holes(nuc, 0.1 * rbc_area)
    zones, n_wbc, plt_labels, sliver = _nucleus_groups(
        nuc, ds, params, ch.nuclear, ch.nucleus_threshold
    )
    wbc_nuc = np.where(nuc, zones, 0).astype(np.int32)

    # --- one watershed for all cells: white cells grow from their nuclei, red cells
    # from the thick cores of the cell mask; they meet at the waists between them.
    stage("white")
    body = cells | (zones > 0)
    dist = _distance(body)
    markers = zones.copy()
    if params.detect_rbc or n_wbc:
        # (Not near a border sliver of nucleus: its cell body may still hold red-cell
        # seeds, else a neighbouring white cell floods through the waist into it.)
        near = cv2.dilate(((zones > 0) & ~sliver[zones]).astype(np.uint8), _disk(0.15 * ds)) > 0
        cores = _h_maxima(dist, max(0.5, params.rbc_split_depth * ds), ds)
        cores &= (dist >= 0.25 * ds) & ~near
        core_lab, n_core = _label_cores(cores, 0.1 * ds)
        markers = np.where(cores, core_lab + n_wbc, markers).astype(np.int32)
    flood = watershed(-dist, markers, mask=body)

    wbc_labels = np.zeros(nuc.shape, np.int32)
    if n_wbc:
        if ch.black.any():
            reach = body  # a cell cut out on black is the whole lit object
        else:
            disk = _disk(params.max_cytoplasm_width * ds)
            cut = sliver[zones]
            reach = cv2.dilate(((zones > 0) & ~cut).astype(np.uint8), disk) > 0
            if cut.any():
                # Each cell within reach of its own nucleus: a border sliver's reach must
                # not let a neighbour's flood through the waist into the sliver's cell.
                near_cut = cv2.dilate(cut.astype(np.uint8), disk) > 0
                reach = np.where(sliver[np.minimum(flood, n_wbc)] & (flood > 0), near_cut, reach)
        wbc_labels = np.where((flood > 0) & (flood <= n_wbc) & reach, flood, 0).astype(np.int32)
        wbc_labels = _fill_each(wbc_labels, n_wbc)
        wbc_labels, zones, n_wbc = _merge_lobes(wbc_labels, zones, nuc, n_wbc, ds, params, sliver)
        wbc_nuc = np.where(nuc, zones, 0).astype(np.int32)
        if not ch.black.any():
            rbc_pixels = (flood > n_wbc) & cells
            wbc_labels = _trim_cytoplasm(wbc_labels, zones, rbc_pixels, ch, n_wbc, ds, params)
        # A stained speck inside a white cell is a granule or a lobe, not a platelet.
        plt_labels[wbc_labels > 0] = 0

    stage("red")
    rbc_labels = np.zeros(nuc.shape, np.int32)
    red = np.zeros(nuc.shape, bool)
    if params.detect_rbc:
        if ch.black.any():
            red = cells & (flood > n_wbc)
        else:
            red = _red_cell_mask(ch, nuc, wbc_labels, ds, params)
        rbc_labels = _split_red_cells(red & (wbc_labels == 0) & (plt_labels == 0), ds, params)
    stage("platelets")
    if params.detect_platelets and not ch.black.any():
        plt_labels = _platelets(ch, nuc, wbc_labels, red, plt_labels, ds, params)

    stage("records")
    result = _assemble(
        rgb, small, scale, d, params, pixel_size_um, wbc_labels, wbc_nuc, n_wbc, rbc_labels,
        plt_labels, ch,
    )
    checkpoint(progress, should_cancel, 1.0, f"segmented: {len(result.cells)} cells")
    return result
