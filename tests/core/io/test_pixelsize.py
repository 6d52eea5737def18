"""Pixel size from OME-XML, ImageJ, Aperio, resolution tags and PNG density, only when plausible."""

from __future__ import annotations

import dataclasses
import json

import pytest
import tifffile
from hostile.make_corpus import ome_xml, write_ome_tiff
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


@pytest.mark.parametrize(
    ("unit", "per_unit", "expected"),
    [("micron", 2.0, 0.5), ("\\u00B5m", 2.0, 0.5), ("nm", 0.2, 0.005)],
)
def test_imagej_units_are_believed_without_the_plausible_range(
    tmp_path, rgb, unit, per_unit, expected
):
    # ImageJ's unit is written by a person or a calibrated scope, not a default:
    # 5 nm per pixel is below the range of resolution tags, inside the calibration's.
    tifffile.imwrite(
        tmp_path / "ij.tif",
        rgb[..., 0],
        imagej=True,
        resolution=(per_unit, per_unit),
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


# -- absurd values: never a number that overflows later or is not JSON


def _json_ok(info) -> str:
    return json.dumps(dataclasses.asdict(info), allow_nan=False)  # Infinity/NaN raise here


@pytest.mark.parametrize("value", ["1e308", "1e200", "inf", "-inf", "nan", "0", "-0.5", "1e-9"])
def test_absurd_ome_physical_size_is_unknown_with_a_warning(tmp_path, rgb, value):
    path = write_ome_tiff(tmp_path / "a.ome.tif", rgb, ome_xml(50, 40, physical_size_x=value))
    info = image_info(path)
    assert info.pixel_size_um is None
    assert any("PhysicalSizeX" in w and "unknown" in w for w in info.warnings), info.warnings
    _json_ok(info)


def test_ome_physical_size_that_is_not_a_number(tmp_path, rgb):
    path = write_ome_tiff(tmp_path / "a.ome.tif", rgb, ome_xml(50, 40, physical_size_x="lots"))
    info = image_info(path)
    assert info.pixel_size_um is None and any("'lots'" in w for w in info.warnings)


def test_absurd_ome_value_gives_way_to_a_plausible_resolution_tag(tmp_path, rgb):
    tifffile.imwrite(
        tmp_path / "b.ome.tif",
        rgb,
        photometric="rgb",
        description=ome_xml(50, 40, physical_size_x="1e308"),
        metadata=None,
        resolution=(40000, 40000),
        resolutionunit="CENTIMETER",
    )
    info = image_info(tmp_path / "b.ome.tif")
    assert info.pixel_size_um == pytest.approx(0.25)
    assert any("1e+308" in w for w in info.warnings)


@pytest.mark.parametrize(
    ("unit", "per_unit"),
    [("um", 1 / 4294967295), ("nm", 2.0)],  # 4.3e9 um: a rational tag at its limit; 0.5 nm
)
def test_imagej_resolution_outside_the_calibration_range_is_unknown(tmp_path, rgb, unit, per_unit):
    tifffile.imwrite(
        tmp_path / "ij.tif",
        rgb[..., 0],
        imagej=True,
        resolution=(per_unit, per_unit),
        metadata={"unit": unit},
    )
    info = image_info(tmp_path / "ij.tif")
    assert info.pixel_size_um is None
    assert any("ImageJ" in w for w in info.warnings)
    _json_ok(info)


@pytest.mark.parametrize("mpp", ["1e308", "nan", "-0.25", "0"])
def test_absurd_aperio_mpp_is_unknown(tmp_path, rgb, mpp):
    description = f"Aperio Image Library v12.0.15\n50x40 -> 50x40 JPEG/RGB Q=70|MPP = {mpp}"
    tifffile.imwrite(tmp_path / "a.svs", rgb, photometric="rgb", description=description)
    info = image_info(tmp_path / "a.svs")
    assert info.pixel_size_um is None and any("MPP" in w for w in info.warnings)
    _json_ok(info)


def test_a_good_file_has_no_warnings(tmp_path, rgb, sample_jpeg):
    path = write_ome_tiff(tmp_path / "g.ome.tif", rgb, ome_xml(50, 40, physical_size_x="0.25"))
    assert image_info(path).warnings == ()
    assert image_info(sample_jpeg).warnings == ()
