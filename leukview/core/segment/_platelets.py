"""Platelets: small specks of nuclear stain with a dark centre, on the glass."""

from __future__ import annotations

import cv2
import numpy as np

from ..measure import label_max
from ._morphology import _disk
from ._params import SegmentationParams
from ._stain import _Channels


def _platelets(
    ch: _Channels,
    nuc: np.ndarray,
    wbc_labels: np.ndarray,
    red: np.ndarray,
    plt_labels: np.ndarray,
    ds: float,
    params: SegmentationParams,
) -> np.ndarray:
    """Platelets: small specks of nuclear stain, paler than nuclei, not in a white cell.

    Platelets are purple-blue like nuclei but smaller and often paler, so the
    nuclear cut misses many. Specks above
    :attr:`SegmentationParams.platelet_threshold_scale` × the nuclear cut (and
    the least nuclear contrast), between :attr:`~SegmentationParams.min_platelet_area`
    and :attr:`~SegmentationParams.max_platelet_area` red-cell areas, away from
    white cells, are platelets; those found by the nuclear cut are kept.

    Returns
    -------
    ndarray of int32, one label per platelet
    """
    rbc_area = np.pi * ds * ds / 4.0
    thr = max(
        float(params.min_nucleus_contrast), params.platelet_threshold_scale * ch.nucleus_threshold
    )
    cand = (ch.nuclear > thr) & ~ch.black
    near_wbc = cv2.dilate((wbc_labels > 0).astype(np.uint8), _disk(0.1 * ds)) > 0
    cand &= ~near_wbc
    cand |= plt_labels > 0
    n, lab, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(cand.shape, np.int32)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    keep = (area >= max(2.0, params.min_platelet_area * rbc_area)) & (
        area <= params.max_platelet_area * rbc_area
    )
    # A speck that touches a white cell is a piece of it (granule, cytoplasm edge).
    touch = np.zeros(n, bool)
    touch[np.unique(lab[near_wbc & (lab > 0)])] = True
    keep &= ~touch
    # A platelet has a dark centre (granulomere): pale specks are red-cell edges.
    stain = np.where(lab > 0, ch.nuclear, 0).clip(0).astype(np.float32)
    peak = label_max(stain, lab, n - 1, separated=True)
    keep &= peak >= params.platelet_peak_scale * ch.nucleus_threshold
    # No cell around: a ring around the speck lies mostly on the glass (a blue
    # speck within a red cell is its rim or a stain deposit).
    grown = cv2.dilate(lab.astype(np.float32), _disk(max(1.0, 0.1 * ds))).astype(np.int32)
    ring = (grown > 0) & (lab == 0)
    ring_n = np.bincount(grown[ring], minlength=n)
    ring_red = np.bincount(grown[ring & red], minlength=n)
    keep &= ring_red <= params.max_platelet_surround * np.maximum(ring_n, 1)
    keep[0] = False
    lut = np.zeros(n, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[lab]
