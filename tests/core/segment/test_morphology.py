"""Mask primitives: distance with the border as background, h-maxima, seeds, hole filling."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.morphology import h_maxima

from leukview.core.segment._morphology import (
    _disk,
    _distance,
    _fill_each,
    _fill_small_holes,
    _h_maxima,
    _label_cores,
    _local_peaks,
)


def test_disk_is_round_and_at_least_3_wide() -> None:
    assert _disk(0.2).shape == (3, 3)
    d5 = _disk(5)
    assert d5.shape == (11, 11) and d5[5, 5] == 1 and d5[0, 0] == 0 and d5[0, 5] == 1


def test_distance_counts_the_image_border_as_background() -> None:
    full = np.ones((9, 9), bool)
    dist = _distance(full)
    assert np.isfinite(dist).all()
    assert dist[4, 4] == pytest.approx(5.0, abs=0.1) and dist[0, 4] == pytest.approx(1.0, abs=0.1)
    assert (_distance(np.zeros((4, 4), bool)) == 0).all()


def test_h_maxima_matches_scikit_image() -> None:
    """Domes rising 8 and 4 above a plateau: h = 3 keeps both tops, h = 5 only the taller's."""
    yy, xx = np.mgrid[0:40, 0:60]
    f = np.maximum(10 - np.hypot(xx - 15, yy - 20), 2.0)
    f = np.maximum(f, 6 - np.hypot(xx - 45, yy - 20)).astype(np.float32)
    for h in (3.0, 5.0):
        ours = _h_maxima(f, h, reach=20)
        ref = h_maxima(f, h).astype(bool)
        assert np.array_equal(ours, ref), h
    assert _h_maxima(f, 3.0, 20)[20, 45] and not _h_maxima(f, 5.0, 20)[20, 45]
    assert _h_maxima(f, 5.0, 20)[20, 15]


def test_local_peaks_count_plateaus_once() -> None:
    f = np.zeros((20, 30), np.float32)
    f[5:7, 5:7] = 4.0  # a plateau of four pixels
    f[12, 20] = 3.0
    f[2, 25] = 1.0  # below the floor
    probe = np.zeros_like(f)
    probe[12, 20] = 1.0
    heights, probes = _local_peaks(f, 2, 2.0, probe)
    assert sorted(heights.tolist()) == [3.0, 4.0]
    assert sorted(probes.tolist()) == [0.0, 1.0]


def test_label_cores_joins_close_pieces() -> None:
    cores = np.zeros((10, 20), bool)
    cores[5, 3] = cores[5, 5] = True  # 2 px apart
    cores[5, 15] = True
    lab, n = _label_cores(cores, 2.0)
    assert n == 2 and lab[5, 3] == lab[5, 5] != lab[5, 15]
    assert not lab[~cores].any()
    assert _label_cores(cores, 0.5)[1] == 3


def test_fill_small_holes_fills_only_small_ones() -> None:
    mask = np.zeros((40, 60), bool)
    mask[5:35, 5:55] = True
    mask[10:13, 10:13] = False  # 9 px
    mask[15:30, 30:50] = False  # 300 px
    filled = _fill_small_holes(mask, 50)
    assert filled[11, 11] and not filled[20, 40]
    assert np.array_equal(_fill_small_holes(filled, 50), filled)


def test_fill_each_fills_every_label_in_place() -> None:
    labels = np.zeros((30, 60), np.int32)
    labels[5:25, 5:25] = 1
    labels[12:15, 12:15] = 0  # a hole in label 1
    labels[5:25, 35:55] = 2
    out = _fill_each(labels, 2)
    assert out[13, 13] == 1 and (out[5:25, 35:55] == 2).all()
    assert set(np.unique(out)) == {0, 1, 2}
