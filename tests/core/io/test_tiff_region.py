"""Regions of large TIFFs: pyramids, tiles and strips, only the segments needed, one white level."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from leukview.core.io import ImageInfo, _tiff_region, image_info, read_image, read_region

RNG = np.random.default_rng(17)


def _pyramid(path: Path, level0: np.ndarray) -> list[np.ndarray]:
    levels = [level0, level0[::2, ::2].copy(), level0[::4, ::4].copy()]
    meta = {"PhysicalSizeX": 0.2, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.2, "axes": "YXS"}
    opts = {"tile": (64, 64), "photometric": "rgb", "compression": "zlib"}
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(levels[0], subifds=2, metadata=meta, **opts)
        for lvl in levels[1:]:
            tw.write(lvl, subfiletype=1, **opts)
    return levels


def test_tiled_pyramidal_ome_tiff_info_and_regions(tmp_path, expect_error):
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
    expect_error(path, "level 3", "3 level", call=lambda p: read_region(p, 0, 0, 8, 8, level=3))


@pytest.mark.parametrize("bigtiff", [False, True])
def test_striped_tiff_region_matches_full_image(tmp_path, bigtiff):
    data = RNG.integers(0, 256, (97, 61, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="rgb", rowsperstrip=10, bigtiff=bigtiff)
    assert np.array_equal(read_image(tmp_path / "s.tif"), data)
    assert not image_info(tmp_path / "s.tif").tiled
    assert np.array_equal(read_region(tmp_path / "s.tif", 5, 33, 50, 40), data[33:73, 5:55])


def test_jpeg_compressed_tiled_tiff_regions_match_the_whole(tmp_path, sample_jpeg):
    # Slide scanners store JPEG tiles with shared tables; a real field keeps it honest.
    field = read_image(sample_jpeg)
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


@pytest.mark.parametrize("tag_on_level_1", [True, False])
def test_pyramid_levels_of_a_rotated_tiff_are_refused(tmp_path, rgb, expect_error, tag_on_level_1):
    # Reduced levels often lack the Orientation tag; level 0's counts, as in image_info.
    rotated = [(274, "H", 1, 6, True)]
    with tifffile.TiffWriter(tmp_path / "r.tif") as tw:
        tw.write(rgb, photometric="rgb", subifds=1, extratags=rotated)
        tw.write(
            rgb[::2, ::2].copy(),
            photometric="rgb",
            subfiletype=1,
            extratags=rotated if tag_on_level_1 else (),
        )
    assert image_info(tmp_path / "r.tif").levels == [(40, 50), (20, 25)]
    assert np.array_equal(read_region(tmp_path / "r.tif", 0, 0, 40, 50), np.rot90(rgb, -1))
    expect_error(tmp_path / "r.tif", "rotated", call=lambda p: read_region(p, 0, 0, 8, 8, level=1))


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
    real = _tiff_region._decode_segment
    monkeypatch.setattr(
        _tiff_region,
        "_decode_segment",
        lambda d, data, i, a: decoded.append(i) or real(d, data, i, a),
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


def test_a_tile_above_the_limit_is_refused_even_for_a_small_region(tmp_path, expect_error):
    data = RNG.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", data, tile=(128, 128), photometric="rgb")
    assert np.array_equal(
        read_region(tmp_path / "t.tif", 0, 0, 8, 8, max_pixels=128 * 128), data[:8, :8]
    )
    expect_error(
        tmp_path / "t.tif",
        "128 x 128",
        "limit",
        call=lambda p: read_region(p, 0, 0, 8, 8, max_pixels=128 * 128 - 1),
    )
