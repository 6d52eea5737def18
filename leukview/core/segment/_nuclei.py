"""White-cell nuclei from the nuclear-stain mask: lobes grouped, touching nuclei split.

Fragments closer than :attr:`~SegmentationParams.lobe_merge_distance` are
grouped (the lobes of a neutrophil are one cell). Groups large and thick enough
are white-cell nuclei (erythroblasts included); small isolated specks are
platelet candidates. Touching nuclei are split by a marker-controlled
watershed on the distance transform (h-maxima markers) when each piece is
nucleus-sized.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from ..measure import label_max
from ._morphology import _disk, _distance, _fill_small_holes, _h_maxima, _label_cores
from ._params import SegmentationParams


def _nucleus_groups(
    nuc: np.ndarray,
    ds: float,
    params: SegmentationParams,
    nuclear: np.ndarray | None = None,
    threshold: float = 0.0,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Group nuclear-stain fragments into white-cell nuclei and platelets.

    ``nuclear`` (float, same shape as ``nuc``) and its cut ``threshold`` let a dark
    nucleus cut by the image border count although little of it shows.

    Returns
    -------
    zones : ndarray of int32
        1..n per white cell: its grouped nucleus region (lobes and the gaps
        between them), touching nuclei split by a distance-transform watershed.
    n : int
    platelets : ndarray of int32
        Nonzero on small isolated stained specks (one label per speck).
    sliver : ndarray of bool, shape (n + 1,)
        True for nuclei kept only because the image border cuts them.
    """
    rbc_area = np.pi * ds * ds / 4.0
    zones = np.zeros(nuc.shape, np.int32)
    plt_labels = np.zeros(nuc.shape, np.int32)
    if not nuc.any():
        return zones, 0, plt_labels, np.zeros(1, bool)
    merged = cv2.morphologyEx(
        nuc.astype(np.uint8), cv2.MORPH_CLOSE, _disk(params.lobe_merge_distance * ds / 2.0)
    ) > 0
    merged = _fill_small_holes(merged | nuc, 0.5 * rbc_area)
    group_lab, n_group = ndi.label(merged)
    sizes = np.bincount(group_lab.ravel(), weights=nuc.ravel(), minlength=n_group + 1)
    # Thickness (largest half-width of stained pixels) tells a nucleus from a clump of
    # platelet granules of the same area.
    nuc_dist = _distance(nuc)
    thick = label_max(nuc_dist, group_lab, n_group, separated=True)
    is_wbc = (sizes >= params.min_wbc_nucleus_area * rbc_area) & (
        thick >= params.min_nucleus_thickness * ds
    )
    if nuclear is not None and threshold > 0:
        # A nucleus cut by the image border shows only a sliver: too small and thin for
        # the rules above. A platelet is narrower than a long dark chord along the border.
        chord = np.zeros(n_group + 1)
        for edge in (group_lab[0], group_lab[-1], group_lab[:, 0], group_lab[:, -1]):
            on = edge[edge > 0]
            if on.size:
                chord = np.maximum(chord, np.bincount(on, minlength=n_group + 1))
        cut = (chord >= params.min_border_nucleus_chord * ds) & ~is_wbc
        cut[0] = False
        # Dark, and one solid piece (the granules of a platelet clump are several).
        boxes = ndi.find_objects(group_lab)
        for g in np.flatnonzero(cut):
            sl = boxes[g - 1]
            piece = nuc[sl] & (group_lab[sl] == g)
            cut[g] = (
                nuclear[sl][piece].max() >= params.min_border_nucleus_stain * threshold
                and ndi.label(piece)[1] == 1
            )
        is_wbc |= cut
    else:
        cut = np.zeros(n_group + 1, bool)
    is_wbc[0] = False
    is_plt = (~is_wbc) & (sizes >= params.min_platelet_area * rbc_area)
    is_plt[0] = False
    if params.detect_platelets and is_plt.any():
        plt_labels = np.where(is_plt[group_lab] & nuc, group_lab, 0).astype(np.int32)
    if not is_wbc.any():
        return zones, 0, plt_labels, np.zeros(1, bool)
    wbc_groups = is_wbc[group_lab]
    dist = _distance(wbc_groups)
    # One marker per thick core: regional maxima of the distance that stand out by
    # a fraction of d (two touching nuclei have a waist between them).
    cores = _h_maxima(dist, max(0.5, params.split_depth * ds), ds) & (
        dist >= params.split_min_radius * ds
    )
    markers, n_mk = _label_cores(cores, 0.1 * ds)
    have = np.zeros(n_group + 1, bool)
    have[np.unique(group_lab[cores])] = True
    missing = np.flatnonzero(is_wbc & ~have)
    if missing.size:
        # Groups without a thick core still get one marker at their deepest point.
        pos = ndi.maximum_position(dist, group_lab, missing)
        for k, (py, px) in enumerate(pos):
            markers[py, px] = n_mk + 1 + k
    split = watershed(-dist, markers, mask=wbc_groups)
    # A split stands only if every piece holds a nucleus of its own size: a group
    # with a small piece (a lobe, a bulge) stays one cell.
    n_split = int(split.max())
    piece_area = np.bincount(split[nuc], minlength=n_split + 1)
    piece_group = np.zeros(n_split + 1, np.int64)
    piece_group[split[wbc_groups]] = group_lab[wbc_groups]
    small_piece = piece_area < params.min_split_nucleus_area * rbc_area
    small_piece[0] = False
    bad_group = np.zeros(n_group + 1, bool)
    bad_group[piece_group[small_piece]] = True
    # Lobes of one cell: a group no larger than one big nucleus is never split.
    bad_group |= sizes < params.min_split_group_area * rbc_area
    first_piece = np.zeros(n_group + 1, np.int64)
    order = np.arange(n_split, 0, -1)
    first_piece[piece_group[order]] = order  # lowest piece id per group wins
    lut_merge = np.arange(n_split + 1)
    lut_merge[1:] = np.where(
        bad_group[piece_group[1:]], first_piece[piece_group[1:]], lut_merge[1:]
    )
    split = lut_merge[split]
    # Relabel compactly, dropping pieces left without nuclear pixels.
    ids = np.unique(split[nuc & wbc_groups])
    ids = ids[ids > 0]
    lut = np.zeros(int(split.max()) + 1, np.int32)
    lut[ids] = np.arange(1, len(ids) + 1)
    zones = lut[split]
    sliver = np.zeros(len(ids) + 1, bool)
    sliver[lut[split[cut[group_lab] & (split > 0)]]] = True
    sliver[0] = False
    return zones, len(ids), plt_labels, sliver
