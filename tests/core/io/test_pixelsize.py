"""Pixel size from OME-XML, ImageJ, Aperio, resolution tags and PNG density, only when plausible."""

from __future__ import annotations

import pytest
import tifffile
from PIL import Image

from leukview.core.io import image_info


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"resolution": (40000, 40000), "resolutionunit": "CENTIMETER"}, 0.25),  # 40000 px/cm
        ({"resolution": (50800, 50800), "resolutionunit": "INCH"}, 0.5),
        ({"resolution": (72, 72), "resolutionunit": "INCH"}, None),  # screen default
        ({"resolution": (1, 1), "resolutionunit": "NONE"}, None),
        ({"resolution": (300, 300), "resolutionunit": "CENTIMETER"}, None),  # 33 um/px: print
        ({}, None),
    ],
)
def test_pixel_size_from_resolution_tags(tmp_path, rgb, kwargs, expected):
    tifffile.imwrite(tmp_path / "r.tif", rgb, photometric="rgb", **kwargs)
    got = image_info(tmp_path / "r.tif").pixel_size_um
    assert got == (None if expected is None else pytest.approx(expected))


def test_pixel_size_from_imagej_metadata(tmp_path, rgb):
    tifffile.imwrite(
        tmp_path / "ij.tif",
        rgb[..., 0],
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": "um"},
    )
    assert image_info(tmp_path / "ij.tif").pixel_size_um == pytest.approx(0.5)


@pytest.mark.parametrize(("unit", "expected"), [("micron", 0.5), ("\\u00B5m", 0.5), ("nm", 5e-4)])
def test_imagej_units_are_believed_without_the_plausible_range(tmp_path, rgb, unit, expected):
    # ImageJ's unit is written by a person or a calibrated scope, not a default.
    tifffile.imwrite(
        tmp_path / "ij.tif",
        rgb[..., 0],
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": unit},
    )
    assert image_info(tmp_path / "ij.tif").pixel_size_um == pytest.approx(expected)


def test_pixel_size_from_ome_with_unit(tmp_path, rgb):
    meta = {"PhysicalSizeX": 250.0, "PhysicalSizeXUnit": "nm", "axes": "YXS"}
    tifffile.imwrite(tmp_path / "nm.ome.tif", rgb, ome=True, photometric="rgb", metadata=meta)
    info = image_info(tmp_path / "nm.ome.tif")
    assert info.format == "OME-TIFF" and info.pixel_size_um == pytest.approx(0.25)


def test_ome_without_physical_size_falls_back_to_nothing(tmp_path, rgb):
    tifffile.imwrite(
        tmp_path / "n.ome.tif", rgb, ome=True, photometric="rgb", metadata={"axes": "YXS"}
    )
    assert image_info(tmp_path / "n.ome.tif").pixel_size_um is None


def test_pixel_size_from_aperio_mpp(tmp_path, rgb):
    description = (
        "Aperio Image Library v12.0.15\n50x40 -> 50x40 JPEG/RGB Q=70|AppMag = 40|MPP = 0.2520"
    )
    tifffile.imwrite(tmp_path / "a.svs", rgb, photometric="rgb", description=description)
    assert image_info(tmp_path / "a.svs").pixel_size_um == pytest.approx(0.252)


def test_png_dpi_gives_pixel_size_only_when_plausible(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "cal.png", dpi=(101600, 101600))  # 0.25 um/px
    Image.fromarray(rgb).save(tmp_path / "screen.png", dpi=(72, 72))
    assert image_info(tmp_path / "cal.png").pixel_size_um == pytest.approx(0.25, rel=1e-3)
    assert image_info(tmp_path / "screen.png").pixel_size_um is None


def test_jpeg_without_density_has_no_pixel_size(sample_jpeg):
    assert image_info(sample_jpeg).pixel_size_um is None
