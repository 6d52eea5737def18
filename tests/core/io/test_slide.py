"""Whole slides: one reader interface over OpenSlide, tifffile and plain images."""

from __future__ import annotations

import numpy as np
import pytest
from slide_factory import (
    mosaic,
    write_generic_tiff,
    write_ome_tiff,
    write_subifd_tiff,
    write_svs,
)

from leukview.core.errors import ImageReadError
from leukview.core.io import Slide, is_slide_file, open_slide
from leukview.core.io._openslide import _rgb, openslide_available

pytestmark = pytest.mark.skipif(not openslide_available(), reason="OpenSlide is not installed")


@pytest.fixture(scope="module")
def field_mosaic() -> np.ndarray:
    return mosaic(3, 4)  # 2560 x 1440 from the four bundled BCCD fields


def _close(a: np.ndarray, b: np.ndarray, tol: float = 6.0) -> bool:
    return float(np.abs(a.astype(int) - b.astype(int)).mean()) < tol


def test_svs_like_file_opens_through_openslide_with_mpp_levels_and_associated_images(tmp_path, field_mosaic):
    path = write_svs(tmp_path / "case.svs", field_mosaic, mpp=0.25)
    with open_slide(path) as slide:
        assert isinstance(slide, Slide)
        assert slide.backend == "openslide" and slide.vendor == "aperio"
        assert (slide.width, slide.height) == (2560, 1440)
        assert slide.levels[:2] == ((2560, 1440), (1280, 720))
        assert slide.downsamples[1] == pytest.approx(2.0, rel=0.01)
        assert slide.pixel_size_um == pytest.approx(0.25)
        assert {"label", "macro", "thumbnail"} <= set(slide.associated)
        label = slide.associated_image("label")
        assert label.shape == (120, 160, 3) and _close(label, np.full_like(label, (230, 240, 250)), 3)
        with pytest.raises(KeyError):
            slide.associated_image("barcode")
        region = slide.read_region(700, 300, 200, 150)
        assert region.shape == (150, 200, 3) and region.dtype == np.uint8
        assert _close(region, field_mosaic[300:450, 700:900])
        # level 1: coordinates in that level's pixels
        low = slide.read_region(350, 150, 100, 75, level=1)
        import cv2

        expect = cv2.resize(field_mosaic[300:450, 700:900], (100, 75), interpolation=cv2.INTER_AREA)
        assert _close(low, expect, 8)


def test_generic_pyramidal_tiff_gives_levels_and_the_resolution_tag_pixel_size(tmp_path, field_mosaic):
    path = write_generic_tiff(tmp_path / "slide.tif", field_mosaic, mpp=0.5, levels=3)
    slide = open_slide(path)
    assert slide.backend == "openslide" and slide.vendor == "generic-tiff"
    assert slide.level_count == 3
    assert slide.pixel_size_um == pytest.approx(0.5, rel=1e-3)
    assert slide.best_level(1.0) == 0 and slide.best_level(2.5) == 1 and slide.best_level(100) == 2
    assert _close(slide.read_region(0, 0, 64, 64), field_mosaic[:64, :64])


def test_subifd_pyramid_is_read_by_tifffile_which_sees_its_levels(tmp_path, field_mosaic):
    path = write_subifd_tiff(tmp_path / "sub.tif", field_mosaic, levels=3)
    slide = open_slide(path)
    assert slide.backend == "tifffile"
    assert slide.level_count == 3 and slide.pixel_size_um == pytest.approx(0.25, rel=1e-3)
    assert _close(slide.read_region(100, 100, 50, 50, 0), field_mosaic[100:150, 100:150])


def test_ome_tiff_stays_with_tifffile(tmp_path, field_mosaic):
    path = write_ome_tiff(tmp_path / "s.ome.tif", field_mosaic, mpp=0.3)
    slide = open_slide(path)
    assert slide.backend == "tifffile" and slide.vendor == "ome-tiff"
    assert slide.pixel_size_um == pytest.approx(0.3)
    np.testing.assert_array_equal(slide.read_region(10, 20, 30, 40), field_mosaic[20:60, 10:40])  # lossless


def test_a_plain_field_is_a_one_level_slide(repo_root):
    path = sorted((repo_root / "resources" / "samples").glob("*.jpg"))[0]
    slide = open_slide(path)
    assert slide.backend == "image" and slide.levels == ((640, 480),) and slide.downsamples == (1.0,)
    assert slide.read_region(600, 440, 80, 80).shape == (80, 80, 3)


def test_outside_the_slide_is_white_and_bad_requests_are_refused(tmp_path, field_mosaic, monkeypatch):
    slide = open_slide(write_generic_tiff(tmp_path / "s.tif", field_mosaic, levels=2))
    region = slide.read_region(-10, -10, 20, 20)
    assert (region[:10] == 255).all() and (region[:, :10] == 255).all()
    assert _close(region[10:, 10:], field_mosaic[:10, :10])
    assert (slide.read_region(5000, 5000, 8, 8) == 255).all()
    with pytest.raises(ValueError):
        slide.read_region(0, 0, 0, 5)
    with pytest.raises(ValueError):
        slide.read_region(0, 0, 5, 5, level=7)
    with pytest.raises(ValueError):
        slide.read_region(0.5, 0, 5, 5)  # type: ignore[arg-type]
    monkeypatch.setenv("LEUKVIEW_MAX_PIXELS", "1000")
    with pytest.raises(ImageReadError, match="limit"):
        slide.read_region(0, 0, 100, 100)


def test_thumbnail_is_bounded_and_covers_the_slide(tmp_path, field_mosaic):
    slide = open_slide(write_svs(tmp_path / "t.svs", field_mosaic))
    thumb, downsample = slide.thumbnail(400)
    assert max(thumb.shape[:2]) == 400
    assert downsample == pytest.approx(2560 / 400, rel=0.01)


def test_transparent_pixels_are_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (100, 100, 100, 128)
    out = _rgb(rgba)
    assert tuple(out[0, 0]) == (10, 20, 30)
    assert tuple(out[1, 1]) == (255, 255, 255)
    assert 170 < out[0, 1, 0] < 185  # half-way to white


def test_slide_suffixes():
    assert is_slide_file("a/b.SVS") and is_slide_file("x.ndpi") and is_slide_file("x.mrxs")
    assert not is_slide_file("x.tif") and not is_slide_file("x.jpg") and not is_slide_file("._x.svs")


def test_a_missing_file_or_a_text_file_is_a_clear_error(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        open_slide(tmp_path / "nope.svs")
    (tmp_path / "notes.svs").write_text("not a slide")
    with pytest.raises(ImageReadError):
        open_slide(tmp_path / "notes.svs")


# ---- openslide-python's test slides (../shared/data/wsi)


@pytest.mark.real_data
def test_every_openslide_fixture_opens_or_gets_a_clear_message(data_dir):
    wsi = data_dir / "wsi"
    opened = {}
    for name in ("small.svs", "boxes.tiff", "boxes_0.dcm", "boxes_1.dcm", "boxes.png"):
        slide = open_slide(wsi / name)
        opened[name] = slide
        last = slide.level_count - 1
        w, h = slide.levels[last]
        assert slide.read_region(0, 0, w, h, last).shape == (h, w, 3)
    assert opened["small.svs"].vendor == "aperio" and opened["small.svs"].pixel_size_um == pytest.approx(0.499)
    assert "thumbnail" in opened["small.svs"].associated
    assert opened["boxes_0.dcm"].vendor == "dicom" and opened["boxes_0.dcm"].pixel_size_um == pytest.approx(0.499)
    boxes = opened["boxes.tiff"]
    assert boxes.vendor == "generic-tiff" and boxes.level_count == 4
    # its 72-dpi-style resolution (352 µm/px) is not a microscope's: ignored, and said
    assert boxes.pixel_size_um is None and any("mpp-x" in w for w in boxes.warnings)
    png = opened["boxes.png"].read_region(0, 0, 300, 250)
    assert _close(boxes.read_region(0, 0, 300, 250), png, 4)
    for name in ("unreadable.svs", "unopenable.tiff"):
        with pytest.raises(ImageReadError, match="damaged") as info:
            open_slide(wsi / name)
        assert name in str(info.value)
