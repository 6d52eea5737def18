"""TIFF through tifffile: grey, RGB, palette, planar, alpha, OME channel planes, orientation."""

from __future__ import annotations

import builtins
import os
import time
import tracemalloc

import numpy as np
import pytest
import tifffile
from hostile.make_corpus import (
    ome_xml,
    tiff_with_huge_tiles,
    tiff_with_missing_tiles,
    write_ome_tiff,
)

from leukview.core.io import image_info, read_image, read_region

RNG = np.random.default_rng(13)


def test_grey_miniswhite_palette_and_planar_tiffs(tmp_path, rgb):
    grey = rgb[..., 1]
    tifffile.imwrite(tmp_path / "g.tif", grey, photometric="minisblack")
    tifffile.imwrite(tmp_path / "w.tif", grey, photometric="miniswhite")
    assert np.array_equal(read_image(tmp_path / "g.tif")[..., 0], grey)
    assert np.array_equal(read_image(tmp_path / "w.tif")[..., 0], 255 - grey)

    index = (grey % 3).astype(np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :3] = [[65535, 0, 0], [0, 65535, 32896], [0, 0, 0]]
    tifffile.imwrite(tmp_path / "p.tif", index, photometric="palette", colormap=cmap)
    expected = np.array([[255, 0, 0], [0, 255, 0], [0, 128, 0]], np.uint8)[index]
    assert np.array_equal(read_image(tmp_path / "p.tif"), expected)

    planar = np.moveaxis(rgb, -1, 0).copy()
    tifffile.imwrite(tmp_path / "s.tif", planar, photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_image(tmp_path / "s.tif"), rgb)
    assert np.array_equal(read_region(tmp_path / "s.tif", 7, 3, 30, 20), rgb[3:23, 7:37])


def test_rgba_tiff_unassociated_and_premultiplied_alpha_on_white(tmp_path, rgb):
    alpha = np.zeros((40, 50), np.uint8)
    alpha[20:] = 255
    tifffile.imwrite(
        tmp_path / "u.tif", np.dstack([rgb, alpha]), photometric="rgb", extrasamples=["unassalpha"]
    )
    img = read_image(tmp_path / "u.tif")
    assert (img[:20] == 255).all() and np.array_equal(img[20:], rgb[20:])
    # Premultiplied, half alpha: the colour is stored already halved.
    half = np.full((4, 4, 4), 128, np.uint8)
    half[..., :3] = 50
    tifffile.imwrite(tmp_path / "a.tif", half, photometric="rgb", extrasamples=["assocalpha"])
    assert (read_image(tmp_path / "a.tif") == round(50 + 255 * (1 - 128 / 255))).all()


def test_ome_three_channel_planes_become_rgb(tmp_path, rgb):
    tifffile.imwrite(
        tmp_path / "c.ome.tif",
        np.moveaxis(rgb, -1, 0).copy(),
        ome=True,
        photometric="minisblack",
        metadata={"axes": "CYX"},
    )
    assert np.array_equal(read_image(tmp_path / "c.ome.tif"), rgb)
    assert np.array_equal(read_region(tmp_path / "c.ome.tif", 10, 5, 8, 9), rgb[5:14, 10:18])


def test_a_stack_gives_its_first_plane(tmp_path):
    stack = RNG.integers(0, 256, (3, 20, 30), dtype=np.uint8)  # e.g. three focus planes
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    img = read_image(tmp_path / "z.tif")
    assert img.shape == (20, 30, 3)
    assert np.array_equal(img[..., 0], stack[0])


def test_tiff_orientation_tag_is_applied(tmp_path, rgb):
    tifffile.imwrite(tmp_path / "o.tif", rgb, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    img = read_image(tmp_path / "o.tif")
    assert np.array_equal(img, np.rot90(rgb, -1))
    assert (image_info(tmp_path / "o.tif").width, image_info(tmp_path / "o.tif").height) == (40, 50)
    assert np.array_equal(read_region(tmp_path / "o.tif", 2, 3, 10, 12), img[3:15, 2:12])


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"photometric": "separated"}, ("unsupported sample layout", "SEPARATED")),
        ({"photometric": "minisblack", "planarconfig": "contig"}, ("unsupported sample layout",)),
    ],
)
def test_tiff_with_unsupported_sample_layout(tmp_path, expect_error, kwargs, words):
    data = RNG.integers(0, 256, (10, 10, 4 if kwargs["photometric"] == "separated" else 3))
    tifffile.imwrite(tmp_path / "x.tif", data.astype(np.uint8), **kwargs)
    expect_error(tmp_path / "x.tif", *words)
    expect_error(tmp_path / "x.tif", *words, call=lambda p: read_region(p, 0, 0, 4, 4))


def test_truncated_tiled_tiff(tmp_path, expect_error):
    data = RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", data, tile=(64, 64), photometric="rgb", compression="zlib")
    raw = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    expect_error(tmp_path / "cut.tif", "truncated")
    expect_error(tmp_path / "cut.tif", "truncated", call=lambda p: read_region(p, 200, 200, 50, 50))


def test_damaged_tiff_structure(tmp_path, rgb, expect_error):
    tifffile.imwrite(tmp_path / "ok.tif", rgb, photometric="rgb")
    raw = bytearray((tmp_path / "ok.tif").read_bytes())
    raw[4:8] = (len(raw) + 1000).to_bytes(4, "little")  # first IFD beyond the end of the file
    (tmp_path / "bad.tif").write_bytes(bytes(raw))
    expect_error(tmp_path / "bad.tif", "TIFF", "no image")
    expect_error(tmp_path / "bad.tif", "TIFF", "no image", call=image_info)


def test_missing_tiles_are_an_error_not_black(tmp_path, expect_error):
    path, data = tiff_with_missing_tiles(tmp_path / "m.tif", missing=(5, 77, 200))
    err = expect_error(path, "3 of 256 tiles", "no data")
    assert "black" in err.reason
    info = image_info(path)  # the header still reads, and says what is wrong
    assert any("3 of 256 tiles" in w for w in info.warnings), info.warnings
    # Tile 5 is row 0, column 5: pixels 80..96 of the first 16 rows.
    expect_error(path, "1 of the 4 tiles", call=lambda p: read_region(p, 70, 0, 20, 20))
    assert np.array_equal(read_region(path, 0, 100, 50, 50), data[100:150, :50])


def test_missing_strips_are_named_as_strips(tmp_path, rgb, expect_error):
    tifffile.imwrite(tmp_path / "s.tif", rgb, photometric="rgb", rowsperstrip=10)
    with tifffile.TiffFile(tmp_path / "s.tif", mode="r+b") as tif:
        page = tif.pages.first
        counts = list(page.databytecounts)
        counts[1] = 0
        page.tags["StripByteCounts"].overwrite(counts)
    expect_error(tmp_path / "s.tif", "1 of 4 strips")


@pytest.mark.parametrize("compression", ["jpeg", "zlib", None])
def test_a_tile_claiming_two_gigapixels_is_refused_before_allocating(
    tmp_path, expect_error, compression
):
    path = tiff_with_huge_tiles(tmp_path / "h.tif", 65536, 32768, compression)
    tracemalloc.start()
    started = time.monotonic()
    try:
        err = expect_error(path, "65536 x 32768", "tile")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 2.0 and peak < 50_000_000
    assert "refused before decoding" in err.reason
    expect_error(path, "65536 x 32768", call=lambda p: read_region(p, 0, 0, 8, 8))


# -- OME-TIFF references to other files: never followed


@pytest.fixture
def opened(monkeypatch):
    """Every path that Python or tifffile opens while the test runs."""
    paths: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        paths.append(os.fsdecode(file) if isinstance(file, (str, bytes, os.PathLike)) else "<fd>")
        return real_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        paths.append(os.fsdecode(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    return paths


@pytest.mark.parametrize("target", ["../other.tif", "../secret.txt", "other.tif"])
def test_ome_references_to_other_files_are_refused_unread(
    tmp_path, rgb, opened, capfd, expect_error, target
):
    tifffile.imwrite(tmp_path / "other.tif", np.full((40, 50, 3), 250, np.uint8), photometric="rgb")
    (tmp_path / "sub").mkdir()
    tifffile.imwrite(tmp_path / "sub" / "other.tif", np.full((40, 50, 3), 250, np.uint8))
    (tmp_path / "secret.txt").write_text("SECRET-PATIENT root:x:0:0\n" * 20)
    xml = ome_xml(50, 40, references=((target, "urn:uuid:00000000-0000-0000-0000-000000000002"),))
    path = write_ome_tiff(tmp_path / "sub" / "a.ome.tif", rgb, xml)
    opened.clear()
    for call in (read_image, image_info):
        err = expect_error(path, "other file", "never opens", call=call)
        assert "SECR" not in str(err) and "root:" not in str(err)
    assert {os.path.basename(p) for p in opened} <= {"a.ome.tif"}, opened
    out, errors = capfd.readouterr()
    assert "SECR" not in out + errors and "other.tif" not in errors


def test_ome_naming_its_own_file_is_read(tmp_path, rgb):
    # No root UUID, and the one TiffData names this very file: tifffile's rule for "self".
    xml = ome_xml(50, 40, references=(("own.ome.tif", "urn:uuid:x"),)).replace(
        ' UUID="urn:uuid:00000000-0000-0000-0000-000000000001"', ""
    )
    path = write_ome_tiff(tmp_path / "own.ome.tif", rgb, xml)
    assert np.array_equal(read_image(path), rgb)
    assert image_info(path).pixel_size_um == pytest.approx(0.25)
