"""The public readers: regions of flat files, argument checks, and one result for every format."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from leukview.core.io import image_info, read_image, read_region


def test_read_region_of_a_jpeg_crops_and_pads_white(sample_jpeg):
    path = sample_jpeg
    full = read_image(path)
    assert np.array_equal(read_region(path, 100, 50, 64, 32), full[50:82, 100:164])
    edge = read_region(path, 600, 460, 80, 40)
    assert np.array_equal(edge[:20, :40], full[460:, 600:])
    assert (edge[20:] == 255).all() and (edge[:, 40:] == 255).all()


def test_region_arguments_are_checked(sample_jpeg, expect_error):
    path = sample_jpeg
    with pytest.raises(ValueError):
        read_region(path, 0, 0, 0, 10)
    with pytest.raises(ValueError):
        read_region(path, 0.5, 0, 10, 10)
    with pytest.raises(ValueError):
        read_region(path, True, 0, 10, 10)
    with pytest.raises(ValueError):
        read_region(path, 0, 0, 10, 10, level=-1)
    expect_error(path, "level 1", call=lambda p: read_region(p, 0, 0, 8, 8, level=1))


def test_numpy_integer_coordinates_are_accepted(sample_jpeg):
    full = read_image(sample_jpeg)
    x, y = np.int64(10), np.int32(20)
    assert np.array_equal(read_region(sample_jpeg, x, y, 5, 5), full[20:25, 10:15])


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".jpg"])
def test_every_format_reads_to_the_same_rgb_uint8(tmp_path, rgb, suffix):
    path = tmp_path / f"c{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, rgb, photometric="rgb")
    else:
        Image.fromarray(rgb).save(path, quality=100)
    img = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (40, 50, 3)
    if suffix == ".jpg":  # lossy: the reference is Pillow's own decoding
        with Image.open(path) as im:
            assert np.array_equal(img, np.asarray(im.convert("RGB")))
    else:
        assert np.array_equal(img, rgb)
    info = image_info(path)
    assert (info.width, info.height, info.levels) == (50, 40, [(50, 40)])
    assert np.array_equal(read_region(path, 3, 4, 20, 10), img[4:14, 3:23])
