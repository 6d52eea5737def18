"""Image input: real files, unusual layouts, large TIFFs by region, and every bad file."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps

from leukview.core import io
from leukview.core.errors import ImageReadError, LeukViewError
from leukview.core.io import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    ImageInfo,
    image_info,
    is_supported,
    max_pixels_limit,
    read_image,
    read_region,
)

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8)  # 50 wide, 40 high


@pytest.fixture(autouse=True)
def _no_env_limit(monkeypatch):
    monkeypatch.delenv(io.MAX_PIXELS_ENV, raising=False)


def _bccd(data_dir: Path) -> Path:
    return sorted((data_dir / "bccd" / "JPEGImages").glob("*.jpg"))[0]


def _pillow_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _expect_error(path, *words, call=read_image, **kwargs) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        call(path, **kwargs)
    err = info.value
    assert Path(path).name in str(err)
    for word in words:
        assert word.lower() in err.reason.lower(), err.reason
    return err


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming width x height RGB, with a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


def _bomb_tiff(path: Path, width: int, height: int) -> Path:
    """A grey, uncompressed, single-strip TIFF header claiming width x height."""
    tags = [  # (tag, type, value): type 3 SHORT, 4 LONG
        (256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
        (273, 4, 8 + 2 + 9 * 12 + 4), (277, 3, 1), (278, 4, height), (279, 4, 16),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(tags))
    for tag, typ, value in tags:
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, 1) + packed
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + b"\x80" * 16)
    return path


# --------------------------------------------------------------------------- real data


def test_reads_real_bccd_jpeg_like_pillow(data_dir):
    path = _bccd(data_dir)
    img = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (480, 640, 3)
    assert np.array_equal(img, _pillow_rgb(path))
    info = image_info(path)
    assert (info.width, info.height, info.levels, info.format) == (640, 480, [(640, 480)], "JPEG")
    assert info.tiled is False


@pytest.mark.parametrize(
    "pattern",
    ["pbc/neutrophil/*.jpg", "zheng2018/dataset2/images/*.png", "cnmc/fold_0/all/*.png"],
)
def test_reads_real_images_at_their_size(data_dir, pattern):
    path = sorted(data_dir.glob(pattern))[0]
    img = read_image(path)
    ref = _pillow_rgb(path)
    assert img.shape == ref.shape and img.dtype == np.uint8
    assert np.array_equal(img, ref)
    assert (image_info(path).height, image_info(path).width) == img.shape[:2]


def test_cnmc_black_background_stays_black(data_dir):
    img = read_image(sorted((data_dir / "cnmc" / "fold_0" / "hem").glob("*.png"))[0])
    corners = img[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.max() < 10  # segmented cell on black, not composited to white


def test_read_region_of_a_jpeg_crops_and_pads_white(data_dir):
    path = _bccd(data_dir)
    full = read_image(path)
    assert np.array_equal(read_region(path, 100, 50, 64, 32), full[50:82, 100:164])
    edge = read_region(path, 600, 460, 80, 40)
    assert np.array_equal(edge[:20, :40], full[460:, 600:])
    assert (edge[20:] == 255).all() and (edge[:, 40:] == 255).all()


# --------------------------------------------------------------------------- Pillow layouts


def test_greyscale_png_becomes_three_equal_channels(tmp_path):
    grey = RGB[..., 0]
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (40, 50, 3)
    for c in range(3):
        assert np.array_equal(img[..., c], grey)


def test_rgba_png_is_composited_on_white(tmp_path):
    rgba = np.dstack([RGB, np.full((40, 50), 255, np.uint8)])
    rgba[:10, :, 3] = 0  # transparent band
    rgba[10:20, :, 3] = 128  # half transparent band
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert (img[:10] == 255).all()
    assert np.array_equal(img[20:], RGB[20:])
    half = np.rint(RGB[10:20] * (128 / 255) + 255 * (1 - 128 / 255))
    assert np.abs(img[10:20].astype(int) - half).max() <= 1


def test_grey_alpha_png(tmp_path):
    la = np.dstack([np.full((8, 8), 0, np.uint8), np.full((8, 8), 0, np.uint8)])
    la[:4, :, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert (img[:4] == 0).all() and (img[4:] == 255).all()


def test_palette_png_with_and_without_transparency(tmp_path):
    index = (np.arange(40 * 50).reshape(40, 50) % 4).astype(np.uint8)
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30] + [0] * (252 * 3)
    im = Image.fromarray(index, "P")
    im.putpalette(palette)
    im.save(tmp_path / "p.png")
    im.save(tmp_path / "pt.png", transparency=3)
    colours = np.array(palette[:12], np.uint8).reshape(4, 3)
    assert np.array_equal(read_image(tmp_path / "p.png"), colours[index])
    img = read_image(tmp_path / "pt.png")
    assert (img[index == 3] == 255).all()
    assert np.array_equal(img[index == 0], np.tile([255, 0, 0], ((index == 0).sum(), 1)))


def test_bmp_24_bit_and_8_bit_palette(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "c.bmp")
    assert np.array_equal(read_image(tmp_path / "c.bmp"), RGB)
    Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.bmp")
    assert np.array_equal(read_image(tmp_path / "p.bmp"), _pillow_rgb(tmp_path / "p.bmp"))
    assert image_info(tmp_path / "p.bmp").format == "BMP"


def test_one_bit_png(tmp_path):
    Image.fromarray(RGB[..., 0] > 127).save(tmp_path / "b.png")
    img = read_image(tmp_path / "b.png")
    assert np.array_equal(img[..., 1], np.where(RGB[..., 0] > 127, 255, 0))


def test_16_bit_grey_png_with_12_bit_data_is_not_black(tmp_path):
    data = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)  # 0..4095
    Image.fromarray(data).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    assert img.max() == 255 and img[..., 0].mean() > 100
    assert np.array_equal(img[..., 0], np.rint(data * (255 / 4095)).astype(np.uint8))


def test_16_bit_rgb_png_keeps_its_low_byte_scaling(tmp_path):
    import imagecodecs

    data = RNG.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    data[0, 0] = 65535
    (tmp_path / "c16.png").write_bytes(imagecodecs.png_encode(data))
    img = read_image(tmp_path / "c16.png")
    assert np.array_equal(img, np.rint(data * (255 / 65535)).astype(np.uint8))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    # A red block top-left makes every flip and rotation distinguishable.
    src = np.full((40, 60, 3), 200, np.uint8)
    src[:10, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(src).save(path, exif=exif, quality=95)
    img = read_image(path)
    with Image.open(path) as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(img, ref)
    info = image_info(path)
    assert (info.height, info.width) == img.shape[:2]
    assert img.shape[:2] == ((40, 60) if orientation <= 4 else (60, 40))


def test_exif_rotated_jpeg_puts_the_top_left_corner_where_the_camera_meant(tmp_path):
    src = np.full((40, 60, 3), 200, np.uint8)
    src[:10, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(src).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "r.jpg")
    assert img.shape == (60, 40, 3)
    assert img[5, -5, 0] > 200 and img[5, -5, 1] < 60  # red now top-right
    assert img[5, 5, 1] > 150  # top-left is background


def test_png_dpi_gives_pixel_size_only_when_plausible(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "cal.png", dpi=(101600, 101600))  # 0.25 um/px
    Image.fromarray(RGB).save(tmp_path / "screen.png", dpi=(72, 72))
    assert image_info(tmp_path / "cal.png").pixel_size_um == pytest.approx(0.25, rel=1e-3)
    assert image_info(tmp_path / "screen.png").pixel_size_um is None


# --------------------------------------------------------------------------- TIFF layouts


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


def test_float_tiff_zero_to_one(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", RGB.astype(np.float32) / 255, photometric="rgb")
    assert np.array_equal(read_image(tmp_path / "f.tif"), RGB)


def test_grey_miniswhite_palette_and_planar_tiffs(tmp_path):
    grey = RGB[..., 1]
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

    planar = np.moveaxis(RGB, -1, 0).copy()
    tifffile.imwrite(tmp_path / "s.tif", planar, photometric="rgb", planarconfig="separate")
    assert np.array_equal(read_image(tmp_path / "s.tif"), RGB)
    assert np.array_equal(read_region(tmp_path / "s.tif", 7, 3, 30, 20), RGB[3:23, 7:37])


def test_rgba_tiff_unassociated_and_premultiplied_alpha_on_white(tmp_path):
    alpha = np.zeros((40, 50), np.uint8)
    alpha[20:] = 255
    tifffile.imwrite(
        tmp_path / "u.tif", np.dstack([RGB, alpha]), photometric="rgb", extrasamples=["unassalpha"]
    )
    img = read_image(tmp_path / "u.tif")
    assert (img[:20] == 255).all() and np.array_equal(img[20:], RGB[20:])
    # Premultiplied, half alpha: the colour is stored already halved.
    half = np.full((4, 4, 4), 128, np.uint8)
    half[..., :3] = 50
    tifffile.imwrite(tmp_path / "a.tif", half, photometric="rgb", extrasamples=["assocalpha"])
    assert (read_image(tmp_path / "a.tif") == round(50 + 255 * (1 - 128 / 255))).all()


def test_ome_three_channel_planes_become_rgb(tmp_path):
    tifffile.imwrite(
        tmp_path / "c.ome.tif",
        np.moveaxis(RGB, -1, 0).copy(),
        ome=True,
        photometric="minisblack",
        metadata={"axes": "CYX"},
    )
    assert np.array_equal(read_image(tmp_path / "c.ome.tif"), RGB)
    assert np.array_equal(read_region(tmp_path / "c.ome.tif", 10, 5, 8, 9), RGB[5:14, 10:18])


def test_tiff_orientation_tag_is_applied(tmp_path):
    tifffile.imwrite(tmp_path / "o.tif", RGB, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    img = read_image(tmp_path / "o.tif")
    assert np.array_equal(img, np.rot90(RGB, -1))
    assert (image_info(tmp_path / "o.tif").width, image_info(tmp_path / "o.tif").height) == (40, 50)
    assert np.array_equal(read_region(tmp_path / "o.tif", 2, 3, 10, 12), img[3:15, 2:12])


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"photometric": "separated"}, ("unsupported sample layout", "SEPARATED")),
        ({"photometric": "minisblack", "planarconfig": "contig"}, ("unsupported sample layout",)),
    ],
)
def test_tiff_with_unsupported_sample_layout(tmp_path, kwargs, words):
    data = RNG.integers(0, 256, (10, 10, 4 if kwargs["photometric"] == "separated" else 3))
    tifffile.imwrite(tmp_path / "x.tif", data.astype(np.uint8), **kwargs)
    _expect_error(tmp_path / "x.tif", *words)
    _expect_error(tmp_path / "x.tif", *words, call=lambda p: read_region(p, 0, 0, 4, 4))


# --------------------------------------------------------------------------- pixel size


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
def test_pixel_size_from_resolution_tags(tmp_path, kwargs, expected):
    tifffile.imwrite(tmp_path / "r.tif", RGB, photometric="rgb", **kwargs)
    got = image_info(tmp_path / "r.tif").pixel_size_um
    assert got == (None if expected is None else pytest.approx(expected))


def test_pixel_size_from_imagej_metadata(tmp_path):
    tifffile.imwrite(
        tmp_path / "ij.tif",
        RGB[..., 0],
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": "um"},
    )
    assert image_info(tmp_path / "ij.tif").pixel_size_um == pytest.approx(0.5)


def test_pixel_size_from_ome_with_unit(tmp_path):
    meta = {"PhysicalSizeX": 250.0, "PhysicalSizeXUnit": "nm", "axes": "YXS"}
    tifffile.imwrite(tmp_path / "nm.ome.tif", RGB, ome=True, photometric="rgb", metadata=meta)
    info = image_info(tmp_path / "nm.ome.tif")
    assert info.format == "OME-TIFF" and info.pixel_size_um == pytest.approx(0.25)


# --------------------------------------------------------------------------- large TIFFs


def _pyramid(path: Path, level0: np.ndarray) -> list[np.ndarray]:
    levels = [level0, level0[::2, ::2].copy(), level0[::4, ::4].copy()]
    meta = {"PhysicalSizeX": 0.2, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.2, "axes": "YXS"}
    opts = {"tile": (64, 64), "photometric": "rgb", "compression": "zlib"}
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(levels[0], subifds=2, metadata=meta, **opts)
        for lvl in levels[1:]:
            tw.write(lvl, subfiletype=1, **opts)
    return levels


def test_tiled_pyramidal_ome_tiff_info_and_regions(tmp_path):
    level0 = RNG.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    path = tmp_path / "slide.ome.tif"
    levels = _pyramid(path, level0)
    info = image_info(path)
    assert info == ImageInfo(
        width=420,
        height=300,
        levels=[(420, 300), (210, 150), (105, 75)],
        pixel_size_um=pytest.approx(0.2),
        tiled=True,
        format="OME-TIFF",
    )
    assert np.array_equal(read_image(path), level0)
    # Coordinates are in the pixels of the level read, across tile borders.
    assert np.array_equal(read_region(path, 50, 60, 130, 70), level0[60:130, 50:180])
    assert np.array_equal(read_region(path, 30, 40, 100, 70, level=1), levels[1][40:110, 30:130])
    assert np.array_equal(read_region(path, 0, 0, 105, 75, level=2), levels[2])
    edge = read_region(path, 200, 140, 20, 20, level=1)  # overhangs right and bottom
    assert np.array_equal(edge[:10, :10], levels[1][140:, 200:])
    assert (edge[10:] == 255).all() and (edge[:, 10:] == 255).all()
    assert (read_region(path, -50, -50, 20, 20) == 255).all()
    _expect_error(path, "level 3", "3 level", call=lambda p: read_region(p, 0, 0, 8, 8, level=3))


@pytest.mark.parametrize("bigtiff", [False, True])
def test_striped_tiff_region_matches_full_image(tmp_path, bigtiff):
    data = RNG.integers(0, 256, (97, 61, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="rgb", rowsperstrip=10, bigtiff=bigtiff)
    assert np.array_equal(read_image(tmp_path / "s.tif"), data)
    assert not image_info(tmp_path / "s.tif").tiled
    assert np.array_equal(read_region(tmp_path / "s.tif", 5, 33, 50, 40), data[33:73, 5:55])


def test_jpeg_compressed_tiled_tiff_regions_match_the_whole(tmp_path, data_dir):
    # Slide scanners store JPEG tiles with shared tables; a real field keeps it honest.
    field = read_image(_bccd(data_dir))
    path = tmp_path / "j.tif"
    tifffile.imwrite(path, field, tile=(128, 128), photometric="rgb", compression="jpeg")
    whole = read_image(path)
    assert whole.shape == field.shape
    assert np.abs(whole.astype(int) - field).mean() < 4  # lossy, but the same picture
    assert np.array_equal(read_region(path, 100, 90, 300, 200), whole[90:290, 100:400])


def test_16_bit_tiled_regions_share_one_white_level(tmp_path):
    # A 12-bit image whose top-left region is dim: a per-region scale would brighten it.
    data = np.full((256, 256, 3), 4000, np.uint16)
    data[:64, :64] = 1000
    with tifffile.TiffWriter(tmp_path / "p16.tif") as tw:
        tw.write(data, tile=(64, 64), photometric="rgb", subifds=1)
        tw.write(data[::4, ::4].copy(), tile=(64, 64), photometric="rgb", subfiletype=1)
    region = read_region(tmp_path / "p16.tif", 0, 0, 64, 64)
    assert (region == round(1000 * 255 / 4095)).all()
    assert np.array_equal(read_image(tmp_path / "p16.tif")[:64, :64], region)


def _big_tiled_tiff(path: Path, side: int = 2048, tile: int = 256) -> None:
    """side x side RGB whose pixels encode their position; written tile by tile."""

    def tiles():
        yy, xx = np.mgrid[0:tile, 0:tile]
        for r in range(side // tile):
            for c in range(side // tile):
                y, x = yy + r * tile, xx + c * tile
                yield np.dstack([y % 251, x % 253, (y + x) % 256]).astype(np.uint8)

    tifffile.imwrite(
        path, tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(tile, tile),
        photometric="rgb", compression="zlib", compressionargs={"level": 1},
    )  # fmt: skip


def test_region_read_of_large_tiled_tiff_touches_only_the_tiles_it_needs(tmp_path, monkeypatch):
    path = tmp_path / "big.tif"
    _big_tiled_tiff(path)  # 2048 x 2048 x 3 = 12.6 MB decoded, 8 x 8 tiles of 256
    decoded = []
    from leukview.core.io import _tiff_region

    real = _tiff_region._decode_segment
    monkeypatch.setattr(
        _tiff_region, "_decode_segment", lambda d, data, i, a: decoded.append(i) or real(d, data, i, a)
    )
    tracemalloc.start()
    try:
        region = read_region(path, 1100, 600, 300, 200)  # spans 2 x 2 tiles
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    yy, xx = np.mgrid[600:800, 1100:1400]
    assert np.array_equal(region, np.dstack([yy % 251, xx % 253, (yy + xx) % 256]))
    assert sorted(decoded) == [2 * 8 + 4, 2 * 8 + 5, 3 * 8 + 4, 3 * 8 + 5]  # row * 8 + column
    # The region is 0.18 MB and a tile 0.2 MB; the whole level would be 12.6 MB.
    assert peak < 3_000_000, f"peak {peak / 1e6:.1f} MB: more than a few tiles were decoded"


# --------------------------------------------------------------------------- decompression bombs


def test_bomb_png_is_refused_from_its_header(tmp_path):
    path = _bomb_png(tmp_path / "bomb.png", 100_000, 100_000)
    assert path.stat().st_size < 200
    err = _expect_error(path, "100000 x 100000", "limit", io.MAX_PIXELS_ENV)
    assert "decompression" in err.reason
    info = image_info(path)  # the header is reported, not refused
    assert (info.width, info.height) == (100_000, 100_000)


def test_bomb_tiff_is_refused_for_whole_reads_and_for_huge_strips(tmp_path):
    path = _bomb_tiff(tmp_path / "bomb.tif", 100_000, 100_000)
    assert image_info(path).levels == [(100_000, 100_000)]
    _expect_error(path, "100000 x 100000", "region by region")
    # A small region would need one 10-gigapixel strip: refused too.
    _expect_error(path, "limit", call=lambda p: read_region(p, 0, 0, 10, 10))


def test_pillow_own_bomb_check_never_leaks(tmp_path, monkeypatch, data_dir):
    # Pillow's limit is a module global; ours replaces it while we decode.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = _bccd(data_dir)
    assert read_image(path).shape == (480, 640, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    bomb = _bomb_png(tmp_path / "b.png", 30_000, 30_000)
    err = _expect_error(bomb, "limit")
    assert not isinstance(err.__cause__, Image.DecompressionBombError)


def test_limit_from_argument_environment_and_default(monkeypatch, data_dir):
    path = _bccd(data_dir)  # 640 x 480 = 307,200 pixels
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS >= 20_000 * 20_000
    _expect_error(path, "307,200", call=lambda p: read_image(p, max_pixels=300_000))
    monkeypatch.setenv(io.MAX_PIXELS_ENV, "300000")
    _expect_error(path, "limit of 300,000")
    assert read_image(path, max_pixels=400_000).shape == (480, 640, 3)  # the argument wins
    _expect_error(path, "region", call=lambda p: read_region(p, 0, 0, 600, 600))
    monkeypatch.setenv(io.MAX_PIXELS_ENV, "lots")
    with pytest.raises(ImageReadError, match=io.MAX_PIXELS_ENV):
        read_image(path)
    with pytest.raises(ValueError):
        read_image(path, max_pixels=0)


# --------------------------------------------------------------------------- bad files


def test_missing_folder_and_empty_file(tmp_path):
    _expect_error(tmp_path / "nope.jpg", "no such file")
    (tmp_path / "dir.png").mkdir()
    _expect_error(tmp_path / "dir.png", "folder")
    (tmp_path / "empty.jpg").write_bytes(b"")
    _expect_error(tmp_path / "empty.jpg", "empty")
    _expect_error(tmp_path / "empty.jpg", "empty", call=image_info)


def test_truncated_jpeg_is_an_error_not_a_grey_half(tmp_path, monkeypatch, data_dir):
    data = _bccd(data_dir).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "truncated")
    # Even when someone else in the process switched Pillow to tolerate truncation.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    _expect_error(path, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_truncated_tiled_tiff(tmp_path):
    data = RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", data, tile=(64, 64), photometric="rgb", compression="zlib")
    raw = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    _expect_error(tmp_path / "cut.tif", "truncated")
    _expect_error(
        tmp_path / "cut.tif", "truncated", call=lambda p: read_region(p, 200, 200, 50, 50)
    )


def test_text_named_tif(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("patient 12, smear 3\nlooks fine\n")
    _expect_error(path, "not a TIFF", "text")
    _expect_error(path, "not a TIFF", call=image_info)


def test_unsupported_and_unrecognised_formats(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "cells.gif")
    _expect_error(tmp_path / "cells.gif", "unsupported", "GIF")
    (tmp_path / "noise.png").write_bytes(bytes(range(256)) * 4)
    _expect_error(tmp_path / "noise.png", "not a PNG", "unrecognised")
    Image.fromarray(RGB).save(tmp_path / "real.png")  # PNG content under a .jpg name
    (tmp_path / "real.png").rename(tmp_path / "misnamed.jpg")
    assert np.array_equal(read_image(tmp_path / "misnamed.jpg"), RGB)


def test_damaged_png_data(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "ok.png")
    raw = bytearray((tmp_path / "ok.png").read_bytes())
    raw[60:200] = bytes(140)  # wipe the start of the compressed pixels
    (tmp_path / "bad.png").write_bytes(bytes(raw))
    err = _expect_error(tmp_path / "bad.png", "PNG")
    assert isinstance(err, LeukViewError)


def test_region_arguments_are_checked(data_dir):
    path = _bccd(data_dir)
    with pytest.raises(ValueError):
        read_region(path, 0, 0, 0, 10)
    with pytest.raises(ValueError):
        read_region(path, 0.5, 0, 10, 10)
    _expect_error(path, "level 1", call=lambda p: read_region(p, 0, 0, 8, 8, level=1))


# --------------------------------------------------------------------------- suffixes


def test_supported_suffixes_and_is_supported():
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"} <= set(SUPPORTED_SUFFIXES)
    assert is_supported("a/b/Slide.OME.TIF") and is_supported(Path("x.JPG"))
    assert not is_supported("notes.txt") and not is_supported("cells.gif")
    assert not is_supported("._BloodImage_00001.jpg")  # macOS resource fork
    assert not is_supported("jpg")
