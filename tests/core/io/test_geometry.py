"""Orientation transforms and white-padded crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from leukview.core.io._geometry import orient, paste


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow_exif_transpose(rgb, orientation):
    im = Image.fromarray(rgb)
    im.getexif()[0x0112] = orientation
    ref = np.asarray(ImageOps.exif_transpose(im))
    out = orient(rgb, orientation)
    assert np.array_equal(out, ref)
    assert out.flags.c_contiguous


@pytest.mark.parametrize("orientation", [None, 0, 1, 9])
def test_orient_leaves_other_values_alone(rgb, orientation):
    assert orient(rgb, orientation) is rgb


def test_paste_crops_inside_and_pads_white_outside(rgb):
    assert np.array_equal(paste(rgb, 5, 6, 10, 7), rgb[6:13, 5:15])
    out = paste(rgb, -3, 35, 10, 10)  # overhangs left and bottom
    assert out.shape == (10, 10, 3)
    assert np.array_equal(out[:5, 3:], rgb[35:, :7])
    assert (out[:, :3] == 255).all() and (out[5:] == 255).all()
    assert (paste(rgb, 100, 100, 4, 4) == 255).all()
