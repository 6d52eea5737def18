"""More than 8 bits, floats and alpha: effective bit depth, no invented contrast, white behind."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from leukview.core.io import _rgb, read_image
from leukview.core.io._rgb import Layout, to_rgb8, white_level

RNG = np.random.default_rng(19)


# --------------------------------------------------------------------------- through files


def test_16_bit_rgb_tiff_full_range(tmp_path):
    data = RNG.integers(0, 65536, (30, 20, 3), dtype=np.uint16)
    data[0, 0, 0] = 65535
    tifffile.imwrite(tmp_path / "c16.tif", data, photometric="rgb")
    img = read_image(tmp_path / "c16.tif")
    assert img.shape == (30, 20, 3)
    assert np.array_equal(img, np.rint(data * (255 / 65535)).astype(np.uint8))


def test_16_bit_tiff_with_12_bit_camera_data_fills_the_range(tmp_path):
    data = RNG.integers(0, 4096, (30, 20), dtype=np.uint16)
    data[0, 0] = 4095
    tifffile.imwrite(tmp_path / "g12.tif", data, photometric="minisblack")
    img = read_image(tmp_path / "g12.tif")
    assert img.max() == 255 and img.mean() > 80  # dtype-max scaling would give <= 16
    assert np.array_equal(img[..., 2], np.rint(data * (255 / 4095)).astype(np.uint8))


def test_16_bit_tiff_honours_max_sample_value(tmp_path):
    data = np.full((10, 10), 1000, np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", data, extratags=[(281, "H", 1, 4095, True)])
    assert (read_image(tmp_path / "m.tif") == round(1000 * 255 / 4095)).all()


def test_float_tiff_zero_to_one(tmp_path, rgb):
    tifffile.imwrite(tmp_path / "f.tif", rgb.astype(np.float32) / 255, photometric="rgb")
    assert np.array_equal(read_image(tmp_path / "f.tif"), rgb)


def test_float_tiff_above_one_is_scaled_by_its_maximum_and_negatives_clip(tmp_path):
    data = np.array([[-3.0, 0.0, 50.0, 200.0]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", data, photometric="minisblack")
    assert read_image(tmp_path / "f.tif")[0, :, 0].tolist() == [0, 0, 64, 255]


# --------------------------------------------------------------------------- white level


@pytest.mark.parametrize(
    ("peak", "white"), [(0, 255), (200, 255), (256, 511), (1000, 1023), (4095, 4095), (4096, 8191)]
)
def test_white_level_is_the_smallest_bit_depth_holding_the_data(peak, white):
    color = np.array([[[0], [peak]]], np.uint16)
    assert white_level(color, Layout("grey", bits=16)) == white


def test_white_level_of_narrow_and_palette_samples():
    assert white_level(np.zeros((1, 1, 1), np.uint8), Layout("grey", bits=4)) == 15
    assert white_level(np.full((1, 1, 1), 9, np.uint16), Layout("palette", bits=16)) == 1
    assert white_level(np.ones((1, 1, 1), bool), Layout("grey", bits=1)) == 1
    # A MaxSampleValue equal to the dtype's maximum says nothing: the data decide.
    full = Layout("grey", bits=16, max_sample=65535)
    assert white_level(np.full((1, 1, 1), 1000, np.uint16), full) == 1023


def test_white_level_of_complex_samples_is_refused():
    with pytest.raises(ValueError, match="cannot be shown"):
        white_level(np.zeros((1, 1, 1), np.complex64), Layout("grey"))


# --------------------------------------------------------------------------- conversion


def test_float_nan_is_black_and_infinity_is_white():
    raw = np.array([[[np.nan], [np.inf], [0.5]]], np.float32)
    assert to_rgb8(raw, Layout("grey", bits=32), 1.0)[0, :, 0].tolist() == [0, 255, 128]


def test_16_bit_alpha_uses_its_own_full_scale():
    raw = np.array([[[1000, 0], [1000, 65535], [1000, 32768]]], np.uint16)
    out = to_rgb8(raw, Layout("grey", alpha=1, bits=16), 4095.0)
    grey = round(1000 * 255 / 4095)
    half = 32768 / 65535  # on a 4095 scale this alpha would be opaque
    assert out[0, :, 0].tolist() == [255, grey, round(grey * half + 255 * (1 - half))]


def test_conversion_in_bands_equals_one_pass(monkeypatch):
    raw = RNG.integers(0, 4096, (37, 11, 4), dtype=np.uint16)
    layout = Layout("rgb", alpha=3, bits=12)
    whole = to_rgb8(raw, layout, 4095.0)
    monkeypatch.setattr(_rgb, "_BAND_PIXELS", 50)  # bands of 4 rows, the last one short
    assert np.array_equal(to_rgb8(raw, layout, 4095.0), whole)
